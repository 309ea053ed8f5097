// The overview chart's pointer read-out: the minute under the pointer and its figures.
// The chart itself is drawn by the server; without this script it is simply static.
(function () {
  "use strict";
  var svg = document.getElementById("chart");
  var source = document.getElementById("chart-data");
  var readout = document.getElementById("chart-readout");
  var cursor = document.getElementById("chart-cursor");
  if (!svg || !source || !readout || !cursor) { return; }
  var data = JSON.parse(source.textContent);
  var start = Date.parse(data.start);
  var minutes = data.stored.length;

  function show(event) {
    var box = svg.getBoundingClientRect();
    var x = (event.clientX - box.left) * data.width / box.width;
    var index = Math.round((x - data.left) / (data.right - data.left) * (minutes - 1));
    if (index < 0 || index >= minutes) { hide(); return; }
    var at = new Date(start + index * 60000).toISOString().slice(0, 16).replace("T", " ");
    var lag = data.lag[index];
    readout.textContent = at + " UTC: " + data.stored[index] + " stored, " +
      data.delivered[index] + " delivered" +
      (lag === null ? "" : ", average lag " + lag.toFixed(lag < 10 ? 2 : 0) + " s");
    var cx = data.left + (data.right - data.left) * index / (minutes - 1);
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    cursor.setAttribute("visibility", "visible");
  }

  function hide() {
    readout.textContent = "";
    cursor.setAttribute("visibility", "hidden");
  }

  svg.addEventListener("mousemove", show);
  svg.addEventListener("touchstart", function (event) { show(event.touches[0]); }, {passive: true});
  svg.addEventListener("mouseleave", hide);
}());
