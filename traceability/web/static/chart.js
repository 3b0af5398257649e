/* Hover values for the leg charts that traceability/chart.py draws (svg.leg-chart[data-interactive=true]).
   The chart's points are in its script.chart-data (JSON: epoch ms and °C); times are shown in the zone
   named by the chart's data-tz, with the zone named. Mouse, touch and keyboard (arrow keys) alike.
   Vanilla JS, no dependencies; written for this project. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function nearest(points, t) {
    var lo = 0, hi = points.length - 1;
    if (hi < 0) { return null; }
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (points[mid][0] < t) { lo = mid + 1; } else { hi = mid; }
    }
    if (lo > 0 && Math.abs(points[lo - 1][0] - t) <= Math.abs(points[lo][0] - t)) { lo -= 1; }
    return points[lo];
  }

  function setup(svg) {
    var holder = svg.querySelector("script.chart-data");
    if (!holder) { return; }
    var data = JSON.parse(holder.textContent);
    var tz = svg.getAttribute("data-tz") || "UTC";
    var lang = svg.getAttribute("data-lang") || "en";
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat(lang, {
        timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
      });
    } catch (e) {
      tz = "UTC";
      fmt = new Intl.DateTimeFormat(lang, { timeZone: "UTC", dateStyle: "short", timeStyle: "medium" });
    }
    var p = data.plot;
    var layer = el("g", { "class": "hover", "pointer-events": "none", visibility: "hidden" });
    var rule = el("line", { y1: p.y, y2: p.y + p.h, stroke: "#333", "stroke-dasharray": "3 2" });
    var box = el("rect", { fill: "#FFFFFF", "fill-opacity": "0.92", stroke: "#999", rx: 3 });
    var text = el("text", { "font-size": "11", fill: "#111" });
    layer.appendChild(rule); layer.appendChild(box); layer.appendChild(text);
    svg.appendChild(layer);
    var target = el("rect", {
      "class": "hover-target", x: p.x, y: p.y, width: p.w, height: p.h, fill: "transparent"
    });
    svg.appendChild(target);
    svg.setAttribute("tabindex", "0");
    var current = null;

    function show(t) {
      t = Math.max(data.t0, Math.min(data.t1, t));
      current = t;
      var x = p.x + (t - data.t0) / (data.t1 - data.t0) * p.w;
      rule.setAttribute("x1", x); rule.setAttribute("x2", x);
      while (text.firstChild) { text.removeChild(text.firstChild); }
      var lines = [fmt.format(new Date(t)) + " " + tz];
      data.series.forEach(function (s) {
        var pt = nearest(s.points, t);
        if (pt) { lines.push(s.label + ": " + pt[1].toFixed(1) + " °C"); }
      });
      var left = x + 8 + 220 > p.x + p.w ? x - 228 : x + 8;
      lines.forEach(function (line, i) {
        var span = el("tspan", { x: left + 6, y: p.y + 16 + i * 14 });
        span.textContent = line;
        text.appendChild(span);
      });
      box.setAttribute("x", left); box.setAttribute("y", p.y + 4);
      box.setAttribute("width", 220); box.setAttribute("height", 8 + lines.length * 14);
      layer.setAttribute("visibility", "visible");
      svg.setAttribute("aria-label", lines.join("; "));
    }

    function fromEvent(evt) {
      var pt = svg.createSVGPoint();
      var src = evt.touches ? evt.touches[0] : evt;
      pt.x = src.clientX; pt.y = src.clientY;
      var local = pt.matrixTransform(svg.getScreenCTM().inverse());
      return data.t0 + (local.x - p.x) / p.w * (data.t1 - data.t0);
    }

    target.addEventListener("mousemove", function (evt) { show(fromEvent(evt)); });
    target.addEventListener("touchstart", function (evt) { show(fromEvent(evt)); }, { passive: true });
    function hide() { layer.setAttribute("visibility", "hidden"); current = null; }
    target.addEventListener("mouseleave", hide);
    svg.addEventListener("keydown", function (evt) {
      var step = (data.t1 - data.t0) / 50;
      if (evt.key === "ArrowRight" || evt.key === "ArrowLeft") {
        var base = current === null ? data.t0 : current;
        show(base + (evt.key === "ArrowRight" ? step : -step));
        evt.preventDefault();
      } else if (evt.key === "Escape") {
        hide();
      }
    });
    svg.addEventListener("blur", hide);
  }

  function init() {
    var charts = document.querySelectorAll("svg.leg-chart[data-interactive='true']");
    Array.prototype.forEach.call(charts, setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
