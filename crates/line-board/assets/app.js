"use strict";
// The line board: a live, virtualised grid of PBX extensions fed by Server-Sent Events.
// Every value from the network is written with textContent or a DOM property (never as
// markup); the Content-Security-Policy forbids inline script and style attributes, so
// positions are set through the CSSOM (element.style.*).
(() => {
  const STATES = ["idle", "ringing", "busy", "hold", "offline", "unknown"];
  const COLLATOR = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  const params = new URLSearchParams(location.search);
  const WALL = params.get("view") === "wall";
  const OVERSCAN_PX = 400;
  const REFILTER_MS = 250;

  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  const emptyEl = $("empty");
  const banner = $("disconnected");
  const searchEl = $("search");
  const filterEl = $("state-filter");
  const shownEl = $("shown");
  const healthEl = $("health");
  const countsEl = $("counts");

  if (WALL) {
    document.documentElement.classList.add("wall");
    document.title = "Wallboard — sip-blf-sync";
  }

  // ---- data ---------------------------------------------------------------------------------
  /** extension -> record {ext, d, rev, state, dnd, group, queues, reverse, sinceMs, lastMs, hay} */
  const recs = new Map();
  const counts = { all: 0, dnd: 0, stale: 0 };
  for (const s of STATES) counts[s] = 0;
  let groupedCount = 0;
  let queuedCount = 0; // extensions in a call queue: tiles get a line for them
  let queuesShown = false;
  let reverseCount = 0; // extensions with a Teams → PBX line (Teams read, DND from Teams)
  let reverseShown = false;
  let staleAfterMs = 0;
  let offsetMs = 0; // server clock minus browser clock
  let health = null;
  let received = false;

  let query = (params.get("q") || "").trim().toLowerCase();
  let filter = params.get("state") || "all";
  if (filter !== "all" && filter !== "dnd" && !STATES.includes(filter)) filter = "all";
  const groupParam = (params.get("group") || "").trim().toLowerCase();

  // ---- render scheduling ------------------------------------------------------------------
  let frame = 0;
  let structureDirty = true; // membership or grouping changed: re-sort
  let visibleDirty = true; // search/filter changed: re-filter
  let contentDirty = false; // some record changed
  let layoutDirty = true; // visible list or width changed: recompute rows
  let timeDirty = true; // the clock ticked
  let healthDirty = false;
  let countsDirty = true;
  let refilterPending = false; // changes may have moved extensions in or out of the list
  let lastRefilter = 0;
  let refilterTimer = 0;

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  const str = (v) => (typeof v === "string" ? v : typeof v === "number" ? String(v) : "");
  function parseTime(v) {
    if (typeof v !== "string") return null;
    const t = Date.parse(v);
    return Number.isFinite(t) ? t : null;
  }
  const serverNow = () => Date.now() + offsetMs;
  function noteServerTime(v) {
    const t = parseTime(v);
    if (t !== null) offsetMs = t - Date.now();
  }

  function countOut(r) {
    counts.all--;
    counts[r.state]--;
    if (r.dnd) counts.dnd--;
    if (r.group !== null) groupedCount--;
    if (r.queues.length > 0) queuedCount--;
    if (r.reverse !== "") reverseCount--;
  }
  function countIn(r) {
    counts.all++;
    counts[r.state]++;
    if (r.dnd) counts.dnd++;
    if (r.group !== null) groupedCount++;
    if (r.queues.length > 0) queuedCount++;
    if (r.reverse !== "") reverseCount++;
  }

  /** The queue memberships of an extension's JSON: [{queue, paused, reason, inCall}]. */
  function parseQueues(v) {
    if (!Array.isArray(v)) return [];
    const out = [];
    for (const q of v) {
      if (!q || typeof q !== "object" || str(q.queue) === "") continue;
      const paused = q.paused === true;
      out.push({ queue: str(q.queue), paused, reason: paused ? str(q.reason) : "", inCall: q.in_call === true });
    }
    return out;
  }

  /** "support · paused (lunch)" */
  const queueText = (q) => q.queue + (q.paused ? " · paused" + (q.reason ? " (" + q.reason + ")" : "") : "");

  /** "Busy/InACall" as "Busy · InACall"; "DoNotDisturb/DoNotDisturb" as "DoNotDisturb". */
  function presenceText(availability, activity) {
    return activity && activity !== availability ? availability + " · " + activity : availability;
  }

  /** The Teams → PBX line: "Teams: DoNotDisturb · DND (from Teams)", or "" when there is none. */
  function reverseText(e) {
    const read = str(e.teams_read);
    const fromTeams = e.dnd_by === "teams" ? "DND (from Teams)" : "";
    if (read === "") return fromTeams;
    const cut = read.indexOf("/");
    const shown = cut < 0 ? read : presenceText(read.slice(0, cut), read.slice(cut + 1));
    const dnd = fromTeams || (e.dnd_by === "pbx" ? "DND (on the PBX)" : "");
    return "Teams: " + shown + (dnd ? " · " + dnd : "");
  }

  function upsert(e) {
    if (!e || typeof e !== "object") return;
    const ext = str(e.extension);
    if (ext === "") return;
    const old = recs.get(ext);
    const r = old || { ext, rev: 0, group: undefined };
    if (old) countOut(old);
    const group = str(e.group) !== "" ? str(e.group) : null;
    if (!old || old.group !== group) structureDirty = true;
    r.d = e;
    r.rev++;
    r.group = group;
    r.state = STATES.includes(e.line_state) ? e.line_state : "unknown";
    r.dnd = e.dnd === true;
    r.queues = parseQueues(e.queues);
    r.reverse = reverseText(e);
    r.sinceMs = parseTime(e.since);
    r.lastMs = parseTime(e.last_event);
    const cp = e.counterparty && typeof e.counterparty === "object" ? e.counterparty : null;
    r.hay = [ext, str(e.name), str(e.email), cp ? str(cp.number) : "", cp ? str(cp.name) : ""]
      .concat(r.queues.map((q) => q.queue))
      .join("\n")
      .toLowerCase();
    countIn(r);
    if (!old) recs.set(ext, r);
    contentDirty = true;
    countsDirty = true;
  }

  function setHealth(m) {
    health = {
      sources: Array.isArray(m.sources) ? m.sources : [],
      sinks: Array.isArray(m.sinks) ? m.sinks : [],
    };
    const s = Number(m.stale_after_seconds);
    if (m.stale_after_seconds !== undefined && m.stale_after_seconds !== null && Number.isFinite(s)) {
      staleAfterMs = s > 0 ? s * 1000 : 0;
      timeDirty = true;
    }
    healthDirty = true;
  }

  function onSnapshot(m) {
    recs.clear();
    for (const k of Object.keys(counts)) counts[k] = 0;
    groupedCount = 0;
    queuedCount = 0;
    reverseCount = 0;
    if (Array.isArray(m.extensions)) for (const e of m.extensions) upsert(e);
    const s = Number(m.stale_after_seconds);
    staleAfterMs = Number.isFinite(s) && s > 0 ? s * 1000 : 0;
    setHealth(m);
    received = true;
    structureDirty = true;
    countsDirty = true;
    timeDirty = true;
  }

  function onChanges(m) {
    if (Array.isArray(m.extensions)) for (const e of m.extensions) upsert(e);
  }

  const isStale = (r, now) => staleAfterMs > 0 && r.lastMs !== null && now - r.lastMs > staleAfterMs;

  // ---- visible list and layout --------------------------------------------------------------
  let order = []; // all records, sorted by group then extension
  let visible = []; // the records the search, filter and group let through, in order
  let rows = []; // {y, h, head: label|null, start, n}
  let totalHeight = 0;
  let cols = 1;
  let tileW = 0;
  let tileH = 0;
  let gap = 8;
  let lastWidth = -1;

  function compareRecs(a, b) {
    if (a.group !== b.group) {
      if (a.group === null) return 1;
      if (b.group === null) return -1;
      const g = COLLATOR.compare(a.group, b.group);
      if (g !== 0) return g;
      if (a.group < b.group) return -1;
      if (a.group > b.group) return 1;
    }
    const c = COLLATOR.compare(a.ext, b.ext);
    if (c !== 0) return c;
    return a.ext < b.ext ? -1 : a.ext > b.ext ? 1 : 0;
  }

  function matches(r) {
    if (filter === "dnd") {
      if (!r.dnd) return false;
    } else if (filter !== "all" && r.state !== filter) return false;
    if (groupParam && (r.group === null ? "" : r.group.toLowerCase()) !== groupParam) return false;
    if (query && !r.hay.includes(query)) return false;
    return true;
  }
  const filtering = () => filter !== "all" || query !== "" || groupParam !== "";

  function cssPx(name, fallback) {
    const v = parseFloat(getComputedStyle(grid).getPropertyValue(name));
    return Number.isFinite(v) && v > 0 ? v : fallback;
  }

  function computeLayout(width) {
    const minW = cssPx("--tile-min-w", 232);
    tileH = cssPx("--tile-h", 124);
    gap = cssPx("--tile-gap", 8);
    const headH = cssPx("--head-h", 40);
    cols = Math.max(1, Math.floor((width + gap) / (minW + gap)));
    tileW = Math.max(1, (width - gap * (cols - 1)) / cols);
    rows = [];
    let y = 0;
    const grouped = groupedCount > 0;
    let i = 0;
    while (i < visible.length) {
      let j = i;
      if (grouped) {
        const g = visible[i].group;
        while (j < visible.length && visible[j].group === g) j++;
        rows.push({ y, h: headH, head: g === null ? "Other" : g, start: i, n: j - i });
        y += headH;
      } else {
        j = visible.length;
      }
      for (let k = i; k < j; k += cols) {
        rows.push({ y, h: tileH, head: null, start: k, n: Math.min(cols, j - k) });
        y += tileH + gap;
      }
      i = j;
    }
    totalHeight = y;
    grid.style.height = totalHeight + "px";
    layoutDirty = false;
  }

  // ---- tiles --------------------------------------------------------------------------------
  const live = new Map(); // key ("t:ext" or "h:group") -> node in the grid
  const tilePool = [];
  const headPool = [];

  function el(tag, cls, parent) {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (parent) parent.appendChild(n);
    return n;
  }

  function makeTile() {
    const n = el("article", "tile");
    n.setAttribute("role", "listitem");
    const top = el("div", "t-top", n);
    const f = {};
    f.ext = el("span", "t-ext", top);
    f.state = el("span", "t-state", top);
    f.dnd = el("span", "t-dnd", top);
    f.dnd.textContent = "DND";
    f.stale = el("span", "t-stale", top);
    f.stale.textContent = "stale";
    f.queues = el("div", "t-queues", n);
    f.name = el("div", "t-name", n);
    const call = el("div", "t-call", n);
    f.dur = el("span", "t-dur", call);
    f.dir = el("span", "t-dir", call);
    f.cp = el("span", "t-cp", call);
    const teams = el("div", "t-teams", n);
    el("span", "t-label", teams).textContent = "Teams";
    f.acc = el("span", "t-acc", teams);
    f.presence = el("span", "t-presence", teams);
    f.reverse = el("div", "t-reverse", n);
    f.event = el("div", "t-event", n);
    n._f = f;
    n._rec = null;
    n._rev = -1;
    n._x = n._y = n._w = n._h = -1;
    n._time = "";
    return n;
  }

  function makeHead() {
    const n = el("h2", "group-head");
    const f = {};
    f.label = el("span", "g-label", n);
    f.count = el("span", "g-count", n);
    n._f = f;
    n._x = n._y = n._w = -1;
    return n;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }
  function setData(node, key, value) {
    if (value === null) {
      if (key in node.dataset) delete node.dataset[key];
    } else if (node.dataset[key] !== value) node.dataset[key] = value;
  }

  function fillTile(n, r) {
    const f = n._f;
    const e = r.d;
    setData(n, "extension", r.ext);
    setData(n, "state", r.state);
    setData(n, "dnd", r.dnd ? "true" : null);
    setText(f.ext, r.ext);
    setText(f.state, r.state);
    setText(f.queues, r.queues.map(queueText).join(", "));
    setData(n, "paused", r.queues.some((q) => q.paused) ? "true" : null);
    const name = str(e.name) || str(e.email);
    setText(f.name, name || "—");
    const cp = e.counterparty && typeof e.counterparty === "object" ? e.counterparty : null;
    const dir = e.direction === "inbound" ? "← from" : e.direction === "outbound" ? "→ to" : "with";
    setText(f.dir, cp ? dir : "");
    setData(n, "direction", cp && (e.direction === "inbound" || e.direction === "outbound") ? e.direction : null);
    setText(f.cp, cp ? [str(cp.number), str(cp.name)].filter((s) => s !== "").join(" ") : "");
    const t = e.teams && typeof e.teams === "object" ? e.teams : null;
    if (t) {
      const act = str(t.activity);
      const avail = str(t.availability);
      setText(f.presence, presenceText(avail, act) || "—");
      setText(f.acc, t.accepted === false ? "⚠ not accepted" : "✓");
      setData(n, "accepted", t.accepted === false ? "false" : "true");
      f.acc.title = t.accepted === false ? "Microsoft Graph did not accept it (retrying)" : "Accepted by Microsoft Graph";
    } else {
      setText(f.presence, "not set");
      setText(f.acc, "");
      setData(n, "accepted", null);
      f.acc.title = "";
    }
    setText(f.reverse, r.reverse);
    setData(n, "dndBy", e.dnd_by === "teams" || e.dnd_by === "pbx" ? e.dnd_by : null);
    const lines = [r.ext + (str(e.name) ? " " + str(e.name) : "")];
    if (str(e.email)) lines.push(str(e.email));
    if (r.group !== null) lines.push("Group: " + r.group);
    lines.push("Line: " + r.state + (r.dnd ? ", do not disturb" : ""));
    if (cp) lines.push("Other party: " + (str(e.direction) || "call") + " " + f.cp.textContent);
    for (const q of r.queues) lines.push("Queue " + queueText(q) + (q.inCall ? " · in a call" : ""));
    if (t) {
      lines.push(
        "Teams: " + f.presence.textContent + (t.accepted === false ? " (not accepted, retrying)" : " (accepted)") +
          (str(t.at) ? " at " + str(t.at) : ""),
      );
    }
    if (str(e.teams_read)) lines.push("Read from Teams: " + str(e.teams_read));
    if (e.dnd_by === "teams") lines.push("DND set on the PBX by this service, because of Teams");
    else if (e.dnd_by === "pbx") lines.push("DND set on the PBX or the phone");
    if (str(e.last_event)) lines.push("Last PBX event: " + str(e.last_event));
    n.title = lines.join("\n");
    n._rec = r;
    n._rev = r.rev;
    n._time = "";
  }

  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    const ss = String(s % 60).padStart(2, "0");
    if (m < 60) return m + ":" + ss;
    const h = Math.floor(m / 60);
    if (h < 24) return h + ":" + String(m % 60).padStart(2, "0") + ":" + ss;
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function fmtAge(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s ago";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m ago";
    const h = Math.floor(m / 60);
    if (h < 48) return h + "h ago";
    return Math.floor(h / 24) + "d ago";
  }

  function timeTile(n, now) {
    const r = n._rec;
    const f = n._f;
    const stale = isStale(r, now);
    setData(n, "stale", stale ? "true" : null);
    setText(f.dur, r.sinceMs === null ? "" : fmtDuration(now - r.sinceMs));
    setText(f.event, r.lastMs === null ? "No PBX event yet" : "PBX event " + fmtAge(now - r.lastMs));
  }

  function place(n, x, y, w, h) {
    if (n._x !== x || n._y !== y) {
      n.style.transform = "translate(" + x + "px," + y + "px)";
      n._x = x;
      n._y = y;
    }
    if (n._w !== w) {
      n.style.width = w + "px";
      n._w = w;
    }
    if (h !== undefined && n._h !== h) {
      n.style.height = h + "px";
      n._h = h;
    }
  }

  function firstRow(y) {
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (rows[mid].y + rows[mid].h < y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function renderWindow(now, retime) {
    const rect = grid.getBoundingClientRect();
    const top = -rect.top - OVERSCAN_PX;
    const bottom = -rect.top + window.innerHeight + OVERSCAN_PX;
    const want = []; // [key, kind, payload, x, y]
    for (let i = firstRow(top); i < rows.length && rows[i].y <= bottom; i++) {
      const row = rows[i];
      if (row.head !== null) {
        want.push(["h:" + row.start, "h", row, 0, row.y]); // unique even if a group is named "Other"
      } else {
        for (let c = 0; c < row.n; c++) {
          const r = visible[row.start + c];
          want.push(["t:" + r.ext, "t", r, c * (tileW + gap), row.y]);
        }
      }
    }
    const keep = new Set(want.map((w) => w[0]));
    for (const [key, n] of live) {
      if (!keep.has(key)) {
        live.delete(key);
        n.remove();
        (key[0] === "t" ? tilePool : headPool).push(n);
      }
    }
    const width = lastWidth; // measured at the start of the frame: no forced layout here
    for (const [key, kind, p, x, y] of want) {
      let n = live.get(key);
      if (!n) {
        n = kind === "t" ? tilePool.pop() || makeTile() : headPool.pop() || makeHead();
        live.set(key, n);
        grid.appendChild(n);
      }
      if (kind === "t") {
        const fresh = n._rec !== p || n._rev !== p.rev;
        if (fresh) fillTile(n, p);
        if (fresh || retime) timeTile(n, now);
        place(n, x, y, tileW, tileH);
      } else {
        setText(n._f.label, p.head);
        setText(n._f.count, String(p.n));
        place(n, 0, y, width, p.h);
      }
    }
  }

  // ---- header ----------------------------------------------------------------------------
  const countItems = {};
  function buildCounts() {
    const keys = ["all", ...STATES, "dnd", "stale"];
    for (const k of keys) {
      const li = el("li", "count", countsEl);
      li.dataset.count = k;
      const interactive = !WALL && k !== "stale";
      const box = el(interactive ? "button" : "span", "count-box", li);
      if (interactive) {
        box.type = "button";
        box.addEventListener("click", () => setFilter(filter === k && k !== "all" ? "all" : k));
      }
      const word = el("span", "count-word", box);
      word.textContent = k === "dnd" ? "DND" : k;
      const num = el("span", "count-num", box);
      countItems[k] = { box, num, interactive };
    }
  }

  function renderCounts() {
    for (const k of Object.keys(countItems)) {
      const it = countItems[k];
      setText(it.num, String(counts[k]));
      if (it.interactive) it.box.setAttribute("aria-pressed", filter === k ? "true" : "false");
    }
  }

  function renderHealth() {
    const items = [];
    for (const [list, kind] of [
      [health.sources, "source"],
      [health.sinks, "sink"],
    ]) {
      for (const h of list) {
        if (!h || typeof h !== "object") continue;
        const ok = h.ok === true;
        const li = el("li", "health-item");
        li.dataset.name = str(h.name);
        li.dataset.ok = ok ? "true" : "false";
        li.dataset.kind = str(h.kind) || kind;
        const mark = el("span", "h-mark", li);
        mark.textContent = ok ? "✓" : "✗";
        mark.setAttribute("aria-hidden", "true");
        el("span", "h-name", li).textContent = str(h.name) || "?";
        el("span", "h-ok", li).textContent = ok ? "ok" : "not ok";
        const detail = str(h.detail);
        if (detail) el("span", "h-detail", li).textContent = detail;
        const last = str(h.last_success);
        li.title =
          (str(h.kind) || kind) + " " + str(h.name) + ": " + (ok ? "ok" : "not ok") +
          (detail ? "\n" + detail : "") + "\nLast success: " + (last || "never");
        items.push(li);
      }
    }
    if (items.length === 0) {
      const li = el("li", "health-none");
      li.textContent = "No sources or sinks reported";
      items.push(li);
    }
    healthEl.replaceChildren(...items);
    document.documentElement.dataset.healthOk = items.every((li) => li.dataset.ok !== "false") ? "true" : "false";
    healthDirty = false;
  }

  // ---- the frame ------------------------------------------------------------------------------
  function render() {
    frame = 0;
    const now = serverNow();
    if (structureDirty) {
      order = Array.from(recs.values()).sort(compareRecs);
      structureDirty = false;
      visibleDirty = true;
    }
    // Under a search or filter, changes move extensions in and out of the list; re-filter for
    // them at most every REFILTER_MS so the list stays readable (tiles in view still update
    // every frame), and at once when the search, filter or membership changes.
    if (contentDirty && filtering()) refilterPending = true;
    const t = performance.now();
    if (visibleDirty || (refilterPending && t - lastRefilter >= REFILTER_MS)) {
      visible = filtering() ? order.filter(matches) : order;
      visibleDirty = false;
      refilterPending = false;
      lastRefilter = t;
      layoutDirty = true;
      setText(
        shownEl,
        visible.length === recs.size ? recs.size + " extensions" : "Showing " + visible.length + " of " + recs.size,
      );
    }
    if (refilterPending && !refilterTimer) {
      refilterTimer = setTimeout(() => {
        refilterTimer = 0;
        schedule();
      }, Math.max(0, REFILTER_MS - (t - lastRefilter)));
    }
    // Tiles get a line for queues while any extension is in one (a taller tile).
    if ((queuedCount > 0) !== queuesShown) {
      queuesShown = queuedCount > 0;
      document.documentElement.classList.toggle("queues", queuesShown);
      layoutDirty = true;
    }
    // Likewise a line for Teams → PBX while any extension has one.
    if ((reverseCount > 0) !== reverseShown) {
      reverseShown = reverseCount > 0;
      document.documentElement.classList.toggle("reverse", reverseShown);
      layoutDirty = true;
    }
    const width = grid.clientWidth;
    if (width !== lastWidth) {
      lastWidth = width;
      layoutDirty = true;
    }
    if (layoutDirty) computeLayout(width);
    const retime = timeDirty;
    if (timeDirty) {
      let stale = 0;
      if (staleAfterMs > 0) for (const r of recs.values()) if (isStale(r, now)) stale++;
      if (stale !== counts.stale) {
        counts.stale = stale;
        countsDirty = true;
      }
      timeDirty = false;
    }
    renderWindow(now, retime);
    contentDirty = false;
    if (countsDirty) {
      renderCounts();
      countsDirty = false;
    }
    if (healthDirty && health) renderHealth();
    emptyEl.hidden = visible.length > 0;
    if (visible.length === 0) {
      setText(emptyEl, !received ? "Connecting…" : recs.size === 0 ? "No extensions listed." : "No extension matches.");
    }
  }

  function tick() {
    timeDirty = true;
    schedule();
    setTimeout(tick, 1000 - (serverNow() % 1000) + 5);
  }

  // ---- controls -----------------------------------------------------------------------------
  function syncUrl() {
    const p = new URLSearchParams(location.search);
    if (query) p.set("q", searchEl.value.trim());
    else p.delete("q");
    if (filter !== "all") p.set("state", filter);
    else p.delete("state");
    const s = p.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  function setFilter(v) {
    filter = v === "dnd" || STATES.includes(v) ? v : "all";
    filterEl.value = filter;
    visibleDirty = true;
    countsDirty = true;
    syncUrl();
    schedule();
  }

  searchEl.value = params.get("q") || "";
  filterEl.value = filter;
  searchEl.addEventListener("input", () => {
    const q = searchEl.value.trim().toLowerCase();
    if (q === query) return;
    query = q;
    visibleDirty = true;
    syncUrl();
    schedule();
  });
  filterEl.addEventListener("change", () => setFilter(filterEl.value));
  searchEl.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && searchEl.value !== "") {
      searchEl.value = "";
      searchEl.dispatchEvent(new Event("input"));
    }
  });
  document.addEventListener("keydown", (ev) => {
    // "/" jumps to the search box, as in many operator panels
    const t = ev.target;
    const typing = t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
    if (ev.key === "/" && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey && !WALL) {
      ev.preventDefault();
      searchEl.focus();
    }
  });
  window.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", schedule);
  if (typeof ResizeObserver === "function") new ResizeObserver(schedule).observe(grid);

  // ---- the event stream ---------------------------------------------------------------------
  let es = null;
  let retryMs = 1000;
  let connectedOnce = false;

  function setConnected(ok) {
    banner.hidden = ok;
    document.documentElement.dataset.connected = ok ? "true" : "false";
  }

  function handler(fn) {
    return (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!m || typeof m !== "object") return;
      noteServerTime(m.server_time);
      fn(m);
      schedule();
    };
  }

  async function afterClose() {
    // EventSource gives up on an HTTP error status. Find out whether it is authentication.
    try {
      const r = await fetch("/api/v1/health", { cache: "no-store", credentials: "same-origin" });
      if (r.status === 401) {
        location.assign("/login");
        return;
      }
    } catch {
      // the server is unreachable: try again later
    }
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }

  function connect() {
    es = new EventSource("/api/v1/events");
    es.addEventListener("open", () => {
      connectedOnce = true;
      retryMs = 1000;
      setConnected(true);
    });
    es.addEventListener("error", () => {
      setConnected(false);
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        afterClose();
      }
    });
    es.addEventListener("snapshot", handler(onSnapshot));
    es.addEventListener("changes", handler(onChanges));
    es.addEventListener("health", handler(setHealth));
  }

  buildCounts();
  connect();
  // a first connection that takes long is shown like a lost one
  setTimeout(() => {
    if (!connectedOnce && (!es || es.readyState !== EventSource.OPEN)) setConnected(false);
  }, 3000);
  tick();
  schedule();
})();
