// The review page's behaviour: sortable table, charts and segment lists built when a
// video's section comes into view (a 1,000-video page stays interactive at once), and
// seeking the section's <video> to a segment's start. Text goes in with textContent only:
// a file name never becomes markup.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("review-data").textContent);
  var videos = data.videos;
  var STATUS = ["ok", "silent", "low_confidence", "no_face"];
  var PASS = "#1f77b4", FAIL = "#d62728", OTHER = "#aaaaaa";

  function fmt(x, digits) {
    return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
  }

  function player(i) {
    var video = document.getElementById("video-" + i);
    var slot = document.getElementById("player-" + i);
    if (video || !slot) return video;
    video = document.createElement("video");
    video.id = "video-" + i;
    video.controls = true;
    video.preload = "none";
    video.setAttribute("src", slot.dataset.src); // relative to the page, percent-encoded
    slot.replaceWith(video);
    return video;
  }

  function seek(i, t) {
    var video = player(i);
    if (!video) return;
    // preload="none": ask for the metadata now, the position is kept until it arrives
    if (video.preload === "none") video.preload = "metadata";
    video.currentTime = t;
  }

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest(".seek") : null;
    if (!el) return;
    var section = el.closest("section.video");
    if (!section) return;
    ev.preventDefault();
    seek(Number(section.dataset.i), parseFloat(el.dataset.t));
  });
  // list rows and thumbnails are focusable: Enter seeks like a click
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && ev.target.classList && ev.target.classList.contains("seek") &&
        ev.target.tagName !== "BUTTON") {
      ev.target.click();
    }
  });

  // --- sorting ----------------------------------------------------------------------
  var table = document.getElementById("videos");
  var headers = table.querySelectorAll("th[data-key]");
  function sortBy(th) {
    var key = th.dataset.key, numeric = th.dataset.type === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.dataset[key], y = b.dataset[key];
      // videos without the number go last, whichever the direction
      if (x === "" || y === "") return (x === "") - (y === "") || Number(a.dataset.i) - Number(b.dataset.i);
      var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return dir * c || Number(a.dataset.i) - Number(b.dataset.i);
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    body.appendChild(frag);
  }
  headers.forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });

  // --- charts -----------------------------------------------------------------------
  function chart(v) {
    var el = document.getElementById("chart-" + v.i);
    if (!el || el.dataset.drawn) return;
    el.dataset.drawn = "1";
    var traces = [], lo = data.band[0], hi = data.band[1], tmax = 0;
    v.tracks.forEach(function (tr, k) {
      var x = [], y = [], col = [], cd = [], text = [], cy = [];
      for (var j = 0; j < tr.t0.length; j++) {
        if (tr.st[j] === 3) continue; // no_face: no numbers
        var mid = (tr.t0[j] + tr.t1[j]) / 2;
        x.push(mid); y.push(tr.ms[j]); cy.push(tr.c[j]); cd.push(tr.t0[j]);
        col.push(tr.f[j] ? FAIL : tr.st[j] === 0 ? PASS : OTHER);
        text.push(tr.tc0[j] + " – " + tr.tc1[j] + "<br>" + fmt(tr.ms[j], 0) + " ms, LSE-C " +
          fmt(tr.c[j], 2) + ", LSE-D " + fmt(tr.d[j], 2) + "<br>" + STATUS[tr.st[j]] +
          (tr.f[j] ? ", fails the gate" : ""));
        lo = Math.min(lo, tr.ms[j]); hi = Math.max(hi, tr.ms[j]);
        tmax = Math.max(tmax, tr.t1[j]);
      }
      var name = v.tracks.length > 1 ? "track " + k : "offset";
      traces.push({
        type: "scatter", mode: "lines+markers", x: x, y: y, customdata: cd, text: text,
        hovertemplate: "%{text}<extra>" + name + "</extra>", name: name,
        line: {color: "#c7d3dd", width: 1}, marker: {color: col, size: 7}
      });
      traces.push({
        type: "scatter", mode: "lines+markers", x: x, y: cy, customdata: cd, text: text,
        hovertemplate: "%{text}<extra>LSE-C</extra>", yaxis: "y2", name: "LSE-C",
        line: {color: "#8c8c8c", width: 1}, marker: {color: col, size: 4}
      });
    });
    var shapes = [
      {type: "rect", xref: "paper", yref: "y", x0: 0, x1: 1, y0: data.band[0], y1: data.band[1],
       fillcolor: "rgba(44,160,44,0.18)", line: {width: 0}, layer: "below"},
      {type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: 0, y1: 0,
       line: {color: "#666", width: 1}, layer: "below"},
      {type: "line", xref: "paper", yref: "y2", x0: 0, x1: 1, y0: data.min_lse_c, y1: data.min_lse_c,
       line: {color: "#999", width: 1, dash: "dash"}, layer: "below"}
    ];
    if (v.global_offset_ms !== null) {
      shapes.push({type: "line", xref: "paper", yref: "y", x0: 0, x1: 1,
        y0: v.global_offset_ms, y1: v.global_offset_ms, line: {color: "#1f77b4", width: 1, dash: "dash"}});
    }
    // failing ranges: a red strip along the top of the offset panel, so that the gate
    // band under them keeps its colour
    v.failing.forEach(function (r) {
      shapes.push({type: "rect", xref: "x", yref: "paper", x0: r[0], x1: r[1], y0: 0.955, y1: 1,
        fillcolor: "rgba(214,39,40,0.55)", line: {width: 0}});
    });
    v.noface.forEach(function (r) {
      shapes.push({type: "rect", xref: "x", yref: "paper", x0: r[0], x1: r[1], y0: 0, y1: 1,
        fillcolor: "rgba(120,120,120,0.12)", line: {width: 0}, layer: "below"});
    });
    v.cuts.forEach(function (t) {
      shapes.push({type: "line", xref: "x", yref: "paper", x0: t, x1: t, y0: 0, y1: 1,
        line: {color: "#444", width: 1, dash: "dot"}});
    });
    var pad = 0.1 * (hi - lo) + 20;
    var layout = {
      height: 350, margin: {l: 64, r: 16, t: 30, b: 40}, showlegend: false,
      hovermode: "closest", shapes: shapes,
      xaxis: {title: {text: "time (s)"}, anchor: "y2", range: [0, Math.max(tmax, 1)]},
      yaxis: {domain: [0.4, 1], title: {text: "offset (ms)"}, zeroline: false,
              range: [lo - pad, hi + pad]},
      yaxis2: {domain: [0, 0.28], title: {text: "LSE-C"}, zeroline: false}
    };
    Plotly.newPlot(el, traces, layout, {displaylogo: false, responsive: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d"]});
    el.on("plotly_click", function (ev) {
      if (ev.points && ev.points.length) seek(v.i, ev.points[0].customdata);
    });
  }

  function segmentList(v) {
    var tableEl = document.getElementById("segs-" + v.i);
    if (!tableEl || tableEl.rows.length) return;
    var head = tableEl.insertRow();
    ["track", "start", "end", "start (s)", "offset (ms)", "LSE-C", "LSE-D", "status"].forEach(function (h) {
      var th = document.createElement("th"); th.textContent = h; head.appendChild(th);
    });
    v.tracks.forEach(function (tr, k) {
      for (var j = 0; j < tr.t0.length; j++) {
        var row = tableEl.insertRow();
        row.className = "seek " + (tr.f[j] ? "fail" : tr.st[j] === 0 ? "pass" : "other");
        row.dataset.t = tr.t0[j];
        row.tabIndex = 0;
        [k, tr.tc0[j], tr.tc1[j], fmt(tr.t0[j], 2), fmt(tr.ms[j], 0), fmt(tr.c[j], 3),
         fmt(tr.d[j], 3), STATUS[tr.st[j]] + (tr.f[j] ? " (fails)" : "")].forEach(function (c) {
          row.insertCell().textContent = String(c);
        });
      }
    });
  }

  function open(section) {
    var v = videos[Number(section.dataset.i)];
    player(v.i);
    if (!v.tracks.length) return;
    chart(v);
    segmentList(v);
  }

  var sections = document.querySelectorAll("section.video");
  if ("IntersectionObserver" in window) {
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { seen.unobserve(e.target); open(e.target); }
      });
    }, {rootMargin: "400px 0px"});
    sections.forEach(function (s) { seen.observe(s); });
  } else {
    sections.forEach(open);
  }
  window.lipleakReview = {open: open, seek: seek, sortBy: sortBy};
})();
