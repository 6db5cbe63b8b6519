// stockmon's live page: the board from /api/events (Server-Sent Events), a chart from /api/quotes.
// Every value from the server is put in with textContent: a symbol or a rule is never HTML.
// The numbers come formatted by the server (the same functions as the terminal board).
"use strict";

const state = {
  board: null,
  sort: { key: null, reverse: false },  // null: the server's order (by symbol)
  filter: "",
  seenAlerts: null,  // alert key -> when first seen; those of the first board are not news
  prices: new Map(),  // symbol -> last price shown, to flash a row that moved
  chart: null,  // {symbol, range, chart, price, volume, markers}
};

const $ = (selector) => document.querySelector(selector);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// --- the live stream -------------------------------------------------------------------------

function setConnection(live, text) {
  const badge = $("#connection");
  badge.dataset.state = live ? "live" : "disconnected";
  badge.textContent = text;
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => setConnection(true, "live"));
  source.addEventListener("board", (event) => {
    setConnection(true, "live");
    render(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    setConnection(false, "disconnected, reconnecting");
    if (source.readyState === EventSource.CLOSED) {  // the browser gave up (the server said no): try again
      setTimeout(connect, 3000);
    }
  });
}

// --- the board -------------------------------------------------------------------------------

function globToRegExp(pattern) {
  const escaped = pattern.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, "i");
}

function matches(symbol) {
  const pattern = state.filter.trim();
  if (!pattern) return true;
  if (/[*?[]/.test(pattern)) {
    try { return globToRegExp(pattern).test(symbol); } catch { return false; }
  }
  return symbol.toLowerCase().includes(pattern.toLowerCase());
}

function arranged(lines) {
  const shown = lines.filter((line) => matches(line.symbol));
  const { key, reverse } = state.sort;
  if (key) {
    shown.sort((a, b) => {
      const x = a[key] ?? "", y = b[key] ?? "";
      return (x < y ? -1 : x > y ? 1 : 0) || (a.symbol < b.symbol ? -1 : 1);
    });
  }
  if (reverse) shown.reverse();
  return shown;
}

function cell(text, className) {
  return element("td", className, text);
}

function boardRow(line) {
  const shown = line.shown;
  const row = element("tr");
  row.dataset.symbol = line.symbol;
  row.tabIndex = 0;
  const moved = shown.direction;  // up, down or same: told by the arrow and the sign, not colour alone
  row.append(
    cell(line.symbol, "symbol"),
    cell(`${shown.price} ${shown.arrow}`, `num ${moved}`),
    cell(shown.change, `num ${moved}`),
    cell(shown.change_percent, `num ${moved}`),
    cell(shown.day_low, "num wide"),
    cell(shown.day_high, "num wide"),
    cell(shown.volume, "num wide"),
    cell(shown.trend, `trend wide ${moved}`),
    cell(line.stale ? `${shown.age} stale` : shown.age, line.stale ? "num stale" : "num"),
    cell(shown.entitlement, "wide muted"),
  );
  const before = state.prices.get(line.symbol);
  if (before !== undefined && before !== line.price) row.classList.add("changed");
  row.addEventListener("click", () => openChart(line.symbol));
  row.addEventListener("keydown", (event) => { if (event.key === "Enter") openChart(line.symbol); });
  return row;
}

function renderBoard() {
  const board = state.board;
  const rows = arranged(board.symbols);
  $("#board tbody").replaceChildren(...rows.map(boardRow));
  for (const line of board.symbols) state.prices.set(line.symbol, line.price);
  const empty = $("#empty");
  empty.hidden = rows.length > 0;
  empty.textContent = board.symbols.length ? "No symbol matches the filter."
    : `No quotes in ${board.database} yet. Start the pipeline with ./scripts/run.`;
  $("#footnote").hidden = !rows.some((line) => line.reference !== "previous close");
  for (const header of document.querySelectorAll("th[data-key]")) {
    const sorted = header.dataset.key === state.sort.key;
    if (sorted) header.setAttribute("aria-sort", state.sort.reverse ? "descending" : "ascending");
    else header.removeAttribute("aria-sort");
  }
}

function alertKey(alert) {
  return `${alert.symbol}|${alert.rule}|${alert.ts}`;
}

const NEW_FOR_MS = 10000;  // an alert that came while the page was open stays marked new this long

function renderAlerts(alerts) {
  const fresh = state.seenAlerts === null ? [] : alerts.filter((alert) => !state.seenAlerts.has(alertKey(alert)));
  const firstBoard = state.seenAlerts === null;
  state.seenAlerts = state.seenAlerts || new Map();  // key -> when it was first seen (0: on the first board)
  for (const alert of alerts) {
    if (!state.seenAlerts.has(alertKey(alert))) state.seenAlerts.set(alertKey(alert), firstBoard ? 0 : Date.now());
  }
  const items = alerts.map((alert) => {
    const seen = state.seenAlerts.get(alertKey(alert));
    const item = element("li", seen && Date.now() - seen < NEW_FOR_MS ? "new" : "");
    item.append(
      element("time", "muted", new Date(alert.ts).toLocaleString([], { month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit" })),
      element("span", alert.shown.direction, alert.shown.move),
      element("span", "", alert.shown.prices),
      element("span", "rule", `[${alert.rule}]`),
    );
    item.querySelector("time").dateTime = alert.ts;
    return item;
  });
  if (!items.length) items.push(element("li", "muted", "none yet (rules are set in ALERT_RULES)"));
  $("#alerts").replaceChildren(...items);
  for (const alert of fresh) notify(alert);
}

function notify(alert) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  new Notification(`stockmon: ${alert.shown.move}`, { body: `${alert.shown.prices} [${alert.rule}]`,
    tag: alertKey(alert) });
}

function render(board) {
  state.board = board;
  $("#market").textContent = board.market ? board.market.text : "";
  $("#as-of").textContent = `as of ${new Date(board.as_of).toLocaleString()} from ${board.database}`;
  renderBoard();
  renderAlerts(board.alerts);
  const charted = state.chart && board.symbols.find((line) => line.symbol === state.chart.symbol);
  if (charted && charted.ts !== state.chart.newest) {  // only a new quote of that symbol redraws it
    state.chart.newest = charted.ts;
    refreshChartSoon();
  }
}

// --- the chart -------------------------------------------------------------------------------

let refreshTimer = null;
function refreshChartSoon() {  // a burst of boards is one reload of the chart
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => state.chart && loadChart(), 500);
}

function chartColors() {
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  return dark ? { bg: "#0e1116", fg: "#e6e9ee", grid: "#1c222b", line: "#58a6ff", volume: "#3b4a5c" }
    : { bg: "#ffffff", fg: "#1b1f24", grid: "#eef1f4", line: "#1f6feb", volume: "#c9d3df" };
}

// By lightweight-charts' TickMarkType: year, month, day of month, time, time with seconds.
const TICK_FORMATS = [{ year: "numeric" }, { month: "short" }, { month: "short", day: "numeric" },
  { hour: "2-digit", minute: "2-digit" }, { hour: "2-digit", minute: "2-digit", second: "2-digit" }];

function localTime(time, options) {
  return new Date(time * 1000).toLocaleString([], options);
}

function makeChart(container) {
  const colors = chartColors();
  const charts = window.LightweightCharts;
  const chart = charts.createChart(container, {
    autoSize: true,
    // Its logo needs an inline <style>, which the page's Content-Security-Policy refuses: the
    // attribution TradingView asks for is the link under the chart instead.
    layout: { background: { color: colors.bg }, textColor: colors.fg, attributionLogo: false },
    grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
    // The chart's own axis is UTC: times are put in the browser's zone here, as everywhere on the page.
    localization: { timeFormatter: (time) => localTime(time, { month: "short", day: "numeric", hour: "2-digit",
      minute: "2-digit" }) },
    timeScale: { timeVisible: true, secondsVisible: false,
      tickMarkFormatter: (time, type) => localTime(time, TICK_FORMATS[type] || TICK_FORMATS[3]) },
    crosshair: { mode: charts.CrosshairMode.Normal },
  });
  const price = chart.addSeries(charts.LineSeries, { color: colors.line, lineWidth: 2 });
  const volume = chart.addSeries(charts.HistogramSeries, { color: colors.volume, priceScaleId: "",
    priceFormat: { type: "volume" } });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  price.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
  const markers = charts.createSeriesMarkers(price, []);
  return { chart, price, volume, markers };
}

function openChart(symbol) {
  const section = $("#chart-section");
  section.hidden = false;
  if (!state.chart) state.chart = { symbol, range: "1d", ...makeChart($("#chart")) };
  state.chart.symbol = symbol;
  $("#chart-title").textContent = symbol;
  loadChart();
  section.scrollIntoView({ block: "nearest" });
}

async function loadChart() {
  const chart = state.chart;
  const width = Math.max(200, Math.round($("#chart").clientWidth));
  const query = new URLSearchParams({ symbol: chart.symbol, range: chart.range, points: String(Math.min(width, 5000)) });
  let data;
  try {
    const answer = await fetch(`/api/quotes?${query}`, { credentials: "same-origin" });
    data = await answer.json();
    if (!answer.ok) throw new Error(data.error || answer.statusText);
  } catch (error) {
    $("#chart-note").textContent = `cannot load the chart: ${error.message}`;
    return;
  }
  if (chart !== state.chart || data.symbol !== chart.symbol) return;
  const seconds = (ts) => Math.floor(Date.parse(ts) / 1000);
  const byTime = new Map();  // one point a second at most: the chart needs strictly rising times
  for (const [ts, price, , , volume] of data.points) byTime.set(seconds(ts), { price, volume });
  const times = [...byTime.keys()].sort((a, b) => a - b);
  chart.price.setData(times.map((time) => ({ time, value: byTime.get(time).price })));
  chart.volume.setData(times.map((time) => ({ time, value: byTime.get(time).volume })));
  const markers = data.alerts.map((alert) => ({
    time: nearest(times, seconds(alert.ts)),
    position: alert.direction === "up" ? "belowBar" : "aboveBar",
    color: alert.direction === "up" ? "#0a7d32" : "#c4241b",
    shape: alert.direction === "up" ? "arrowUp" : "arrowDown",
    text: alert.rule,
  })).filter((marker) => marker.time !== null).sort((a, b) => a.time - b.time);
  chart.markers.setMarkers(markers);
  chart.chart.timeScale().fitContent();
  const section = $("#chart-section");
  section.dataset.symbol = chart.symbol;
  section.dataset.points = String(times.length);
  section.dataset.markers = String(markers.length);
  $("#chart-note").textContent = times.length
    ? `${times.length} point(s) from ${SOURCE_NAMES[data.source] || "quotes"}${data.downsampled ? ", down-sampled on the server" : ""}; drag to pan, scroll to zoom`
    : "no quotes in this range";
}

const SOURCE_NAMES = { quotes: "quotes", "1m": "1-minute bars", "1d": "daily bars" };

function nearest(times, time) {
  if (!times.length) return null;
  let best = times[0];
  for (const candidate of times) if (Math.abs(candidate - time) < Math.abs(best - time)) best = candidate;
  return best;
}

// --- controls --------------------------------------------------------------------------------

function setUp() {
  for (const header of document.querySelectorAll("th[data-key]")) {
    header.addEventListener("click", () => {
      const key = header.dataset.key;
      state.sort = state.sort.key === key ? { key, reverse: !state.sort.reverse } : { key, reverse: false };
      if (state.board) renderBoard();
    });
  }
  $("#filter").addEventListener("input", (event) => {
    state.filter = event.target.value;
    if (state.board) renderBoard();
  });
  for (const button of document.querySelectorAll("#ranges button")) {
    button.addEventListener("click", () => {
      for (const other of document.querySelectorAll("#ranges button")) other.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-pressed", "true");
      state.chart.range = button.dataset.range;
      loadChart();
    });
  }
  $("#close-chart").addEventListener("click", () => { $("#chart-section").hidden = true; });
  const ask = $("#notify");
  if (!("Notification" in window)) ask.hidden = true;
  else {
    const say = () => {
      ask.textContent = Notification.permission === "granted" ? "Alerts notify you" : "Notify me of alerts";
      ask.disabled = Notification.permission !== "default";
    };
    say();
    ask.addEventListener("click", () => Notification.requestPermission().then(say));
  }
  connect();
}

document.addEventListener("DOMContentLoaded", setUp);
