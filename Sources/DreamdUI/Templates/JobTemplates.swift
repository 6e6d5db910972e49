/// The overview, the job list and one job.
enum JobTemplates {
    static let overview = #"""
    <h1>Overview</h1>
    <div id="overview" data-live>
    <div class="cards">
      <div class="card"><span class="label">Oldest queued job</span><span class="big">{{oldestQueued}}</span></div>
      <div class="card"><span class="label">Finished in the last hour</span><span class="big">{{finishedLastHour}}</span></div>
      <div class="card"><span class="label">Failed in the last 24 h</span><span class="big">{{failed24h}}</span></div>
      <div class="card"><span class="label">Rendered</span><span class="big small">{{renderedAt}}</span></div>
    </div>

    <h2>Jobs by kind and state</h2>
    <p class="hint">Unfinished jobs: all of them. Finished: the last 24 h.</p>
    <div class="scroll"><table>
      <thead><tr><th>kind</th>{{#states}}<th>{{.}}</th>{{/states}}</tr></thead>
      <tbody>
      {{#kindRows}}<tr><th><a href="/ui/jobs?kind={{kind}}">{{kind}}</a></th>{{#cells}}<td class="num">{{#nonzero}}<a href="/ui/jobs?kind={{kind}}&amp;state={{state}}">{{count}}</a>{{/nonzero}}{{^nonzero}}<span class="zero">0</span>{{/nonzero}}</td>{{/cells}}</tr>{{/kindRows}}
      {{^kindRows}}<tr><td colspan="8">No jobs yet.</td></tr>{{/kindRows}}
      </tbody>
    </table></div>

    <h2>Throughput, last hour</h2>
    <svg class="chart" viewBox="0 0 600 130" role="img" aria-label="jobs finished per minute over the last hour">
      <line x1="0" y1="110" x2="600" y2="110" class="axis"/>
      {{#bars}}<g><title>{{label}}: {{succeeded}} succeeded, {{failed}} failed, {{cancelled}} cancelled</title><rect x="{{x}}" y="{{ySucceeded}}" width="8" height="{{hSucceeded}}" class="ok"/><rect x="{{x}}" y="{{yFailed}}" width="8" height="{{hFailed}}" class="bad"/><rect x="{{x}}" y="{{yCancelled}}" width="8" height="{{hCancelled}}" class="muted"/></g>{{/bars}}
      <text x="0" y="126">−60 min</text><text x="560" y="126">now</text><text x="0" y="10">max {{maxPerMinute}}/min</text>
    </svg>
    <p class="legend"><span class="ok">■</span> succeeded <span class="bad">■</span> failed <span class="muted">■</span> cancelled</p>

    <h2>Failures of the last 24 h by error code</h2>
    <div class="scroll"><table>
      <thead><tr><th>error code</th><th>jobs</th></tr></thead>
      <tbody>
      {{#failures}}<tr><td><code>{{code}}</code></td><td class="num"><a href="/ui/jobs?state=failed">{{count}}</a></td></tr>{{/failures}}
      {{^failures}}<tr><td colspan="2">No failures.</td></tr>{{/failures}}
      </tbody>
    </table></div>

    <h2>Upstreams</h2>
    <div class="scroll"><table>
      <thead><tr><th>upstream</th><th>state</th><th>paused until</th><th>reason</th><th>in flight</th><th>kinds</th><th></th></tr></thead>
      <tbody>
      {{#upstreams}}<tr>
        <td>{{name}}</td><td><span class="pill {{state}}">{{state}}</span></td><td>{{pausedUntil}}</td><td>{{reason}}</td>
        <td class="num">{{inFlight}}{{#maxInFlight}} / {{maxInFlight}}{{/maxInFlight}}</td><td>{{kinds}}</td>
        <td>{{#canResume}}<form method="post" action="/ui/upstreams/{{name}}/resume" data-confirm="Resume dispatch to {{name}} in every daemon?">
          <input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Resume</button></form>{{/canResume}}</td>
      </tr>{{/upstreams}}
      {{^upstreams}}<tr><td colspan="7">No upstream is enabled.</td></tr>{{/upstreams}}
      </tbody>
    </table></div>
    </div>
    """#

    static let jobs = #"""
    <h1>Jobs</h1>
    <form class="filters" method="get" action="/ui/jobs">
      <label>Search <input type="search" name="q" value="{{q}}" placeholder="job id, upstream id, or key=value"></label>
      <label>State <select name="state"><option value="">any</option>{{#stateOptions}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/stateOptions}}</select></label>
      <label>Kind <select name="kind"><option value="">any</option>{{#kindOptions}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/kindOptions}}</select></label>
      <label>Schedule <input name="schedule_id" value="{{scheduleID}}" placeholder="uuid" size="10"></label>
      <label>Batch <input name="batch_id" value="{{batchID}}" placeholder="uuid" size="10"></label>
      <label>Created after <input type="datetime-local" name="after" value="{{after}}"></label>
      <label>before <input type="datetime-local" name="before" value="{{before}}"></label>
      <button type="submit">Filter</button> <a href="/ui/jobs">clear</a>
    </form>
    {{#searched}}<p class="hint">{{searchNote}}</p>{{/searched}}
    <div id="jobs" data-live>
    <div class="scroll"><table class="jobs">
      <thead><tr><th>job</th><th>kind</th><th>state</th><th>attempt</th><th>created (UTC)</th><th>finished</th><th>cost</th><th>error</th></tr></thead>
      <tbody>
      {{#rows}}<tr>
        <td><a href="/ui/jobs/{{id}}"><code>{{shortID}}</code></a></td><td>{{kind}}</td><td><span class="pill {{state}}">{{state}}</span></td>
        <td class="num">{{attempt}}/{{maxAttempts}}</td><td>{{createdAt}}</td><td>{{finishedAt}}</td><td class="num">{{cost}}</td><td><code>{{errorCode}}</code></td>
      </tr>{{/rows}}
      {{^rows}}<tr><td colspan="8">No jobs match.</td></tr>{{/rows}}
      </tbody>
    </table></div>
    </div>
    <p class="paging">{{#first}}<a href="{{first}}">« newest</a>{{/first}} {{#next}}<a href="{{next}}" rel="next">older »</a>{{/next}}</p>
    """#

    static let job = #"""
    <p class="crumbs"><a href="/ui/jobs">Jobs</a> › <code>{{id}}</code></p>
    <div id="job" {{#live}}data-live{{/live}}>
    <h1>{{kind}} <span class="pill {{state}}">{{state}}</span></h1>
    <div class="actions">
      {{#canCancel}}<form method="post" action="/ui/jobs/{{id}}/cancel" data-confirm="Cancel this job?"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="danger">Cancel</button></form>{{/canCancel}}
      {{#canRetry}}<form method="post" action="/ui/jobs/{{id}}/retry" data-confirm="Run this job again?"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Retry</button></form>{{/canRetry}}
    </div>
    <dl class="facts">
      <dt>attempt</dt><dd>{{attempt}} of {{maxAttempts}}</dd>
      <dt>priority</dt><dd>{{priority}}</dd>
      <dt>run at</dt><dd>{{runAt}}</dd>
      <dt>created</dt><dd>{{createdAt}}</dd>
      <dt>finished</dt><dd>{{finishedAt}}</dd>
      <dt>cost</dt><dd>{{cost}}</dd>
      <dt>upstream</dt><dd>{{upstream}}</dd>
      {{#scheduleID}}<dt>schedule</dt><dd><a href="/ui/jobs?schedule_id={{scheduleID}}">{{scheduleID}}</a></dd>{{/scheduleID}}
      {{#progress}}<dt>progress</dt><dd><code>{{progress}}</code></dd>{{/progress}}
    </dl>
    {{#error}}<h2>Error</h2><p class="error"><code>{{code}}</code> {{message}}</p>{{/error}}

    <h2>Result</h2>
    {{#hasImages}}<ul class="images">{{#images}}<li><a href="{{.}}" rel="noreferrer noopener" target="_blank">{{.}}</a></li>{{/images}}</ul>{{/hasImages}}
    {{#video}}<video controls preload="metadata" src="/ui/jobs/{{id}}/video" class="video"></video><p><a href="/ui/jobs/{{id}}/video">download the rollout video</a></p>{{/video}}
    {{#text}}<pre class="completion">{{text}}</pre>{{/text}}
    {{#result}}<details><summary>result JSON</summary><pre>{{result}}</pre></details>{{/result}}
    {{^result}}<p class="hint">No result yet.</p>{{/result}}

    <h2>Audit timeline</h2>
    <ol class="timeline" id="timeline">
      {{#events}}<li><time>{{at}}</time> <b>{{from}} → {{to}}</b> by <code>{{actor}}</code>{{#detail}} <span class="detail">{{detail}}</span>{{/detail}}</li>{{/events}}
    </ol>

    <h2>Webhook deliveries</h2>
    <div class="scroll"><table>
      <thead><tr><th>delivery</th><th>event</th><th>subscriber</th><th>state</th><th>attempts</th><th>last status</th></tr></thead>
      <tbody>
      {{#deliveries}}<tr><td><a href="/ui/deliveries/{{id}}"><code>{{shortID}}</code></a></td><td>{{eventType}}</td><td>{{url}}</td><td><span class="pill {{state}}">{{state}}</span></td><td class="num">{{attempts}}</td><td>{{lastStatus}}</td></tr>{{/deliveries}}
      {{^deliveries}}<tr><td colspan="6">No deliveries for this job's events.</td></tr>{{/deliveries}}
      </tbody>
    </table></div>
    </div>

    <h2>Params</h2>
    <pre>{{params}}</pre>
    {{#metadata}}<h2>Metadata</h2><pre>{{metadata}}</pre>{{/metadata}}
    """#
}
