/// The dashboard's stylesheet and script, served from memory at `/ui/assets/` (no CDN, no build step).
enum Assets {
    static let css = #"""
    :root { --fg:#1d2330; --muted:#6b7280; --line:#e5e7eb; --bg:#fafafa; --ok:#15803d; --bad:#b91c1c; --warn:#b45309; --accent:#1d4ed8; }
    * { box-sizing: border-box; }
    body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
    header.top { display:flex; flex-wrap:wrap; gap:.5rem 1.25rem; align-items:center; padding:.6rem 1rem; background:#111827; color:#fff; }
    header.top a { color:#e5e7eb; text-decoration:none; }
    header.top a[aria-current] { color:#fff; border-bottom:2px solid #60a5fa; }
    .brand { font-weight:700; color:#fff !important; }
    nav { display:flex; flex-wrap:wrap; gap:.4rem 1rem; flex:1; }
    .who { display:flex; gap:.5rem; align-items:center; margin:0; color:#d1d5db; }
    .scope { color:#93c5fd; }
    main { max-width:1200px; margin:0 auto; padding:1rem; }
    h1 { font-size:1.5rem; margin:.5rem 0 1rem; } h2 { font-size:1.1rem; margin:1.5rem 0 .5rem; } h3 { font-size:1rem; }
    table { border-collapse:collapse; width:100%; background:#fff; }
    th, td { text-align:left; padding:.35rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
    thead th { font-size:.8rem; text-transform:uppercase; letter-spacing:.03em; color:var(--muted); }
    td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
    .scroll { overflow-x:auto; -webkit-overflow-scrolling:touch; }
    .zero, .hint { color:var(--muted); font-size:.9em; }
    .cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(180px, 1fr)); gap:.75rem; }
    .card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.75rem; display:flex; flex-direction:column; }
    .label { color:var(--muted); font-size:.85rem; } .big { font-size:1.6rem; font-weight:600; } .big.small { font-size:1rem; }
    .pill { display:inline-block; padding:0 .5rem; border-radius:999px; font-size:.8rem; background:#e5e7eb; }
    .pill.succeeded, .pill.healthy, .pill.enabled, .pill.active { background:#dcfce7; color:var(--ok); }
    .pill.failed, .pill.unhealthy, .pill.disabled, .pill.expired, .pill.failing { background:#fee2e2; color:var(--bad); }
    .pill.running, .pill.submitting, .pill.delivering { background:#dbeafe; color:var(--accent); }
    .pill.paused, .pill.expiring, .pill.pending, .pill.scheduled { background:#fef3c7; color:var(--warn); }
    .chart { width:100%; max-width:900px; height:auto; background:#fff; border:1px solid var(--line); border-radius:6px; }
    .chart text { font-size:10px; fill:var(--muted); } .chart .axis { stroke:var(--line); }
    rect.ok { fill:#22c55e; } rect.bad { fill:#ef4444; } rect.muted { fill:#9ca3af; }
    .legend .ok { color:#22c55e; } .legend .bad { color:#ef4444; } .legend .muted { color:#9ca3af; }
    .k0 { fill:#3b82f6; color:#3b82f6; } .k1 { fill:#f59e0b; color:#f59e0b; } .k2 { fill:#10b981; color:#10b981; }
    .k3 { fill:#8b5cf6; color:#8b5cf6; } .k4 { fill:#ec4899; color:#ec4899; } .k5 { fill:#64748b; color:#64748b; }
    .filters { display:flex; flex-wrap:wrap; gap:.5rem 1rem; align-items:flex-end; margin-bottom:1rem; }
    .filters label { display:flex; flex-direction:column; font-size:.85rem; color:var(--muted); }
    input, select, button, .button { font:inherit; padding:.3rem .5rem; border:1px solid #cbd5e1; border-radius:6px; background:#fff; }
    button, .button { cursor:pointer; background:var(--accent); color:#fff; border-color:var(--accent); text-decoration:none; display:inline-block; }
    button.danger { background:var(--bad); border-color:var(--bad); }
    button.link { background:none; border:none; color:#93c5fd; padding:0; text-decoration:underline; }
    .actions { display:flex; flex-wrap:wrap; gap:.5rem; margin:.5rem 0 1rem; } .actions form, td form { margin:0; display:inline; }
    dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem; margin:0; }
    dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; overflow-wrap:anywhere; }
    pre { background:#fff; border:1px solid var(--line); padding:.75rem; overflow:auto; max-height:28rem; white-space:pre-wrap; overflow-wrap:anywhere; }
    .completion { font-family:Georgia, serif; font-size:1rem; }
    .timeline { padding-left:1.2rem; } .timeline li { margin:.25rem 0; } .timeline time { color:var(--muted); font-variant-numeric:tabular-nums; }
    .detail { color:var(--muted); font-size:.85em; overflow-wrap:anywhere; }
    .flash { padding:.5rem .75rem; border-radius:6px; background:#dbeafe; } .flash.error { background:#fee2e2; color:var(--bad); }
    .error, .bad { color:var(--bad); }
    .panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:.25rem 1rem 1rem; margin-bottom:1rem; }
    .login { max-width:28rem; margin:2rem auto; } .login form { display:flex; flex-direction:column; gap:.75rem; }
    .login label { display:flex; flex-direction:column; gap:.25rem; }
    .video { width:100%; max-width:640px; background:#000; }
    code.clip { display:inline-block; max-width:24rem; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
    .crumbs { color:var(--muted); margin:0; } .paging { display:flex; gap:1rem; }
    @media (max-width: 640px) { main { padding:.5rem; } th, td { padding:.3rem .4rem; } .big { font-size:1.3rem; } header.top { padding:.5rem; } }
    """#

    /// Confirmations for `data-confirm` forms, and live refresh: every 3 s the page is fetched again and each
    /// `data-live` element replaced by its fresh copy (by id). A region rendered without `data-live` (a job
    /// that has finished) stops refreshing. Refresh pauses while the tab is hidden.
    static let js = #"""
    "use strict";
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
    (function () {
      var busy = false;
      function refresh() {
        var regions = document.querySelectorAll("[data-live]");
        if (!regions.length || busy || document.hidden) { return; }
        busy = true;
        fetch(window.location.href, { credentials: "same-origin", headers: { "X-Dreamd-Live": "1" } })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) {
            if (!html) { return; }
            var fresh = new DOMParser().parseFromString(html, "text/html");
            regions.forEach(function (region) {
              var replacement = region.id && fresh.getElementById(region.id);
              if (replacement) { region.replaceWith(document.importNode(replacement, true)); }
            });
            document.documentElement.dataset.refreshed = String(Date.now());
          })
          .catch(function () {})
          .then(function () { busy = false; });
      }
      window.setInterval(refresh, 3000);
    })();
    """#
}
