/// The page frame, sign-in and error pages. Templates are compiled into the binary (no resource bundle
/// to install next to it): `dreamd` stays one file, and every asset is served from memory.
enum LayoutTemplates {
    static let layout = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · dreamd</title>
    <link rel="stylesheet" href="/ui/assets/app.css">
    <script src="/ui/assets/app.js" defer></script>
    </head>
    <body>
    <header class="top">
      <a class="brand" href="/ui">dreamd</a>
      {{#session}}
      <nav>
        <a href="/ui"{{#navOverview}} aria-current="page"{{/navOverview}}>Overview</a>
        <a href="/ui/jobs"{{#navJobs}} aria-current="page"{{/navJobs}}>Jobs</a>
        <a href="/ui/costs"{{#navCosts}} aria-current="page"{{/navCosts}}>Costs</a>
        <a href="/ui/schedules"{{#navSchedules}} aria-current="page"{{/navSchedules}}>Schedules</a>
        <a href="/ui/deliveries"{{#navDeliveries}} aria-current="page"{{/navDeliveries}}>Deliveries</a>
        <a href="/ui/checkpoints"{{#navCheckpoints}} aria-current="page"{{/navCheckpoints}}>Checkpoints</a>
      </nav>
      <form class="who" method="post" action="/ui/logout">
        <span title="the key this session signed in with">{{keyName}} · <b class="scope">{{scope}}</b></span>
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button type="submit" class="link">Sign out</button>
      </form>
      {{/session}}
    </header>
    <main>
    {{#flash}}<p class="flash {{kind}}" role="status">{{message}}</p>{{/flash}}
    {{{body}}}
    </main>
    </body>
    </html>
    """#

    static let login = #"""
    <section class="login">
      <h1>Sign in</h1>
      <p>Paste an API key (<code>dreamd keys create --name me --scope read</code> makes one). The key is checked
      once; the browser keeps only a session cookie. Its scope applies to every page and button.</p>
      <form method="post" action="/ui/login">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label>API key <input type="password" name="key" autocomplete="off" required autofocus placeholder="dmd_…"></label>
        <button type="submit">Sign in</button>
      </form>
    </section>
    """#

    static let error = #"""
    <section>
      <h1>{{status}} {{heading}}</h1>
      <p>{{message}}</p>
      <p><a href="/ui">Back to the overview</a></p>
    </section>
    """#
}
