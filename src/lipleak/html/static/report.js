// report.html's figures: plotly figures (data + layout) read from the page's JSON block.
(function () {
  "use strict";
  var specs = JSON.parse(document.getElementById("report-figures").textContent);
  document.querySelectorAll("div.figure").forEach(function (el, k) {
    var spec = specs[k];
    // no mode bar: it would sit on the title; drag zooms, a double click resets
    Plotly.newPlot(el, spec.data, spec.layout, {displaylogo: false, displayModeBar: false});
  });
})();
