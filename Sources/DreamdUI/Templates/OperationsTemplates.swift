/// Costs, schedules, deliveries and checkpoints.
enum OperationsTemplates {
    static let costs = #"""
    <h1>Costs</h1>
    <form class="filters" method="get" action="/ui/costs">
      <label>From <input type="date" name="from" value="{{from}}"></label>
      <label>to (inclusive) <input type="date" name="to" value="{{to}}"></label>
      <button type="submit">Show</button>
      <a class="button" href="/ui/costs.csv?from={{from}}&amp;to={{to}}" download>Download CSV</a>
    </form>
    <p class="big">{{total}} <span class="hint">over {{jobCount}} finished jobs, {{from}} to {{to}} (UTC days)</span></p>
    <svg class="chart" viewBox="0 0 600 150" role="img" aria-label="spend per day">
      <line x1="0" y1="130" x2="600" y2="130" class="axis"/>
      {{#bars}}<g><title>{{day}} {{kind}}: {{cost}}</title><rect x="{{x}}" y="{{y}}" width="{{w}}" height="{{h}}" class="k{{colour}}"/></g>{{/bars}}
      {{#labels}}<text x="{{x}}" y="146">{{text}}</text>{{/labels}}
      <text x="0" y="10">max {{maxDay}}/day</text>
    </svg>
    <p class="legend">{{#kinds}}<span class="k{{colour}}">■</span> {{name}} {{/kinds}}</p>
    <h2>Per day and kind</h2>
    <div class="scroll"><table>
      <thead><tr><th>day (UTC)</th><th>kind</th><th>jobs</th><th>spend</th></tr></thead>
      <tbody>
      {{#days}}<tr><td>{{day}}</td><td>{{kind}}</td><td class="num">{{jobs}}</td><td class="num">{{cost}}</td></tr>{{/days}}
      {{^days}}<tr><td colspan="4">No spend in this range.</td></tr>{{/days}}
      </tbody>
    </table></div>
    <h2>Per API key</h2>
    <div class="scroll"><table>
      <thead><tr><th>key</th><th>jobs</th><th>spend</th></tr></thead>
      <tbody>
      {{#keys}}<tr><td>{{name}}</td><td class="num">{{jobs}}</td><td class="num">{{cost}}</td></tr>{{/keys}}
      {{^keys}}<tr><td colspan="3">No spend in this range.</td></tr>{{/keys}}
      </tbody>
    </table></div>
    """#

    static let schedules = #"""
    <h1>Schedules</h1>
    {{#schedules}}
    <section class="panel">
      <h2>{{name}} <span class="pill {{stateClass}}">{{stateText}}</span></h2>
      <dl class="facts">
        <dt>expression</dt><dd><code>{{cron}}</code> ({{timezone}})</dd>
        <dt>job</dt><dd>{{kind}}</dd>
        <dt>next fire</dt><dd>{{nextLocal}} <span class="hint">({{timezone}})</span><br>{{nextUTC}} <span class="hint">(UTC)</span></dd>
        <dt>last fired</dt><dd>{{lastFired}}</dd>
        <dt>overlap · catch-up</dt><dd>{{overlap}} · {{catchUp}}</dd>
      </dl>
      {{#canChange}}<div class="actions">
        {{#enabled}}<form method="post" action="/ui/schedules/{{id}}/disable"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Disable</button></form>{{/enabled}}
        {{^enabled}}<form method="post" action="/ui/schedules/{{id}}/enable"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Enable</button></form>{{/enabled}}
        <form method="post" action="/ui/schedules/{{id}}/trigger" data-confirm="Run {{name}} now?"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Trigger now</button></form>
      </div>{{/canChange}}
      <h3>Recent runs</h3>
      <div class="scroll"><table>
        <thead><tr><th>tick</th><th>job</th><th>outcome</th><th>cost</th><th>finished</th></tr></thead>
        <tbody>
        {{#runs}}<tr><td>{{scheduledFor}}</td><td><a href="/ui/jobs/{{jobID}}"><code>{{shortID}}</code></a></td><td><span class="pill {{state}}">{{state}}</span></td><td class="num">{{cost}}</td><td>{{finishedAt}}</td></tr>{{/runs}}
        {{^runs}}<tr><td colspan="5">No runs yet.</td></tr>{{/runs}}
        </tbody>
      </table></div>
    </section>
    {{/schedules}}
    {{^schedules}}<p>No schedules. <code>dreamd schedules create</code> or <code>POST /v1/schedules</code> makes one.</p>{{/schedules}}
    """#

    static let deliveries = #"""
    <h1>Deliveries</h1>
    <h2>Subscriptions, failing first</h2>
    <div class="scroll"><table>
      <thead><tr><th>subscriber</th><th>events</th><th>state</th><th>failing since</th><th>last success</th><th></th></tr></thead>
      <tbody>
      {{#subscriptions}}<tr>
        <td>{{url}}{{#description}}<br><span class="hint">{{description}}</span>{{/description}}</td><td>{{events}}</td>
        <td><span class="pill {{stateClass}}">{{stateText}}</span></td><td>{{failingSince}}</td><td>{{lastSuccess}}</td>
        <td>{{#canAct}}<form method="post" action="/ui/subscriptions/{{id}}/recover" data-confirm="Redeliver every failed delivery of the last 24 h to this subscriber?"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Recover 24 h</button></form>{{/canAct}}</td>
      </tr>{{/subscriptions}}
      {{^subscriptions}}<tr><td colspan="6">No subscriptions.</td></tr>{{/subscriptions}}
      </tbody>
    </table></div>
    <h2>Recent deliveries</h2>
    <form class="filters" method="get" action="/ui/deliveries">
      <label>State <select name="state"><option value="">any</option>{{#stateOptions}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/stateOptions}}</select></label>
      <button type="submit">Filter</button>
    </form>
    <div id="deliveries" data-live>
    <div class="scroll"><table>
      <thead><tr><th>delivery</th><th>event</th><th>state</th><th>attempts</th><th>last status</th><th>next attempt</th><th>created</th><th></th></tr></thead>
      <tbody>
      {{#deliveries}}<tr>
        <td><a href="/ui/deliveries/{{id}}"><code>{{shortID}}</code></a>{{#redelivery}} <span class="hint">(redelivery)</span>{{/redelivery}}</td><td>{{eventType}}</td>
        <td><span class="pill {{state}}">{{state}}</span></td><td class="num">{{attempts}}</td><td>{{lastStatus}}</td><td>{{nextAttempt}}</td><td>{{createdAt}}</td>
        <td>{{#canAct}}<form method="post" action="/ui/deliveries/{{id}}/redeliver" data-confirm="Send this event again?"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Redeliver</button></form>{{/canAct}}</td>
      </tr>{{/deliveries}}
      {{^deliveries}}<tr><td colspan="8">No deliveries.</td></tr>{{/deliveries}}
      </tbody>
    </table></div>
    </div>
    """#

    static let delivery = #"""
    <p class="crumbs"><a href="/ui/deliveries">Deliveries</a> › <code>{{id}}</code></p>
    <h1>{{eventType}} <span class="pill {{state}}">{{state}}</span></h1>
    <dl class="facts">
      <dt>subscriber</dt><dd>{{url}}</dd>
      <dt>event</dt><dd><code>{{eventID}}</code></dd>
      <dt>attempts</dt><dd>{{attempts}}</dd>
      <dt>next attempt</dt><dd>{{nextAttempt}}</dd>
      <dt>last error</dt><dd>{{lastError}}</dd>
      {{#redeliveryOf}}<dt>redelivery of</dt><dd><a href="/ui/deliveries/{{redeliveryOf}}">{{redeliveryOf}}</a></dd>{{/redeliveryOf}}
    </dl>
    {{#canAct}}<div class="actions"><form method="post" action="/ui/deliveries/{{id}}/redeliver" data-confirm="Send this event again?"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Redeliver</button></form></div>{{/canAct}}
    <h2>Attempt log</h2>
    <div class="scroll"><table>
      <thead><tr><th>#</th><th>at</th><th>status</th><th>took</th><th>error</th><th>response</th></tr></thead>
      <tbody>
      {{#attempts}}<tr><td class="num">{{attempt}}</td><td>{{at}}</td><td>{{status}}</td><td class="num">{{ms}} ms</td><td>{{error}}</td><td><code class="clip">{{body}}</code></td></tr>{{/attempts}}
      {{^attempts}}<tr><td colspan="6">No attempt yet.</td></tr>{{/attempts}}
      </tbody>
    </table></div>
    """#

    static let checkpoints = #"""
    <h1>Checkpoints</h1>
    <p class="hint">Soonest expiry first. dreamlook deletes a checkpoint when it expires; an archived copy stays in the data directory.</p>
    <div class="scroll"><table>
      <thead><tr><th>checkpoint</th><th>job</th><th>state</th><th>expires (UTC)</th><th>time left</th><th>archive</th><th></th></tr></thead>
      <tbody>
      {{#checkpoints}}<tr>
        <td><code>{{upstreamID}}</code><br><span class="hint">{{modelType}}</span></td>
        <td><a href="/ui/jobs/{{jobID}}"><code>{{shortJobID}}</code></a></td>
        <td><span class="pill {{state}}">{{state}}</span></td><td>{{expiresAt}}</td><td class="num">{{timeLeft}}</td>
        <td>{{archive}}{{#archiveError}}<br><span class="bad">{{archiveError}}</span>{{/archiveError}}</td>
        <td>{{#canExtend}}<form method="post" action="/ui/checkpoints/{{id}}/extend"><input type="hidden" name="csrf" value="{{csrf}}">
          <select name="by" aria-label="extend by"><option value="24">+24 h</option><option value="48">+48 h</option><option value="168">+7 days</option></select>
          <button type="submit">Extend</button></form>{{/canExtend}}</td>
      </tr>{{/checkpoints}}
      {{^checkpoints}}<tr><td colspan="7">No checkpoints.</td></tr>{{/checkpoints}}
      </tbody>
    </table></div>
    """#
}
