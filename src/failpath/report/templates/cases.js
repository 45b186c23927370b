(function () {
  "use strict";
  // The list of failing cases: reads the rows embedded as JSON, shows every value through textContent.
  var source = document.getElementById("fp-case-data");
  var root = document.getElementById("fp-cases");
  if (!source || !root) { return; }
  var data = JSON.parse(source.textContent);
  var F = {};
  data.fields.forEach(function (name, i) { F[name] = i; });
  var PAGE = 50;
  var rows = data.rows;
  var listed = rows.slice(0, data.listed);
  var byCase = {};
  rows.forEach(function (row) {
    var c = row[F.case];
    (byCase[c] = byCase[c] || []).push(row);
  });
  var haystacks = null;
  var shown = [];
  var page = 0;

  function $(id) { return document.getElementById(id); }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (className) { node.className = className; }
    return node;
  }

  function kindNames(bits) {
    var names = [];
    data.kinds.forEach(function (kind) { if (bits & kind[1]) { names.push(kind[2]); } });
    return names.join(", ");
  }

  // Values left out of a row (null) are the ones they equal: see ROW_FIELDS in case_list.py.
  function expectedOf(row) { return row[F.expected] === null ? data.cases[row[F.case]][2] : row[F.expected]; }

  function rawOf(row) { return row[F.raw_output] === null ? expectedOf(row) : row[F.raw_output]; }

  function outputOf(row) { return row[F.output] === null ? rawOf(row) : row[F.output]; }

  // Only an answer or a default gives a value; the other outcomes show a dash, not "null".
  function givenOf(row) {
    return row[F.outcome] === "answered" || row[F.outcome] === "defaulted" ? outputOf(row) : "—";
  }

  function stateName(row) { return row[F.state] === null ? "none" : row[F.state]; }

  function tagsOf(row) { return data.cases[row[F.case]][1]; }

  function short(text) {
    var chars = Array.from(text);
    return chars.length > 140 ? chars.slice(0, 139).join("") + "…" : text;
  }

  function conf(value) { return value === null ? "—" : value.toFixed(2); }

  function fill(select, label, values) {
    select.appendChild(new Option("every " + label, ""));
    values.forEach(function (value) { select.appendChild(new Option(value, value)); });
  }

  function distinct(pick) {
    var seen = {};
    var out = [];
    listed.forEach(function (row) {
      [].concat(pick(row)).forEach(function (value) {
        if (!Object.prototype.hasOwnProperty.call(seen, value)) { seen[value] = true; out.push(value); }
      });
    });
    return out.sort();
  }

  function haystack(row) {
    return [data.cases[row[F.case]][0], tagsOf(row).join(" "), data.suites[row[F.suite]],
      data.perturbations[row[F.perturbation]], stateName(row), row[F.outcome], row[F.input], expectedOf(row),
      rawOf(row), outputOf(row), row[F.raw_error] || ""].join("\n").toLowerCase();
  }

  function apply() {
    var kind = $("fp-kind").value;
    var suite = $("fp-suite").value;
    var perturbation = $("fp-perturbation").value;
    var state = $("fp-state").value;
    var tag = $("fp-tag").value;
    var query = $("fp-q").value.trim().toLowerCase();
    if (query && haystacks === null) { haystacks = listed.map(haystack); }
    var bits = kind === "" ? 3 : (kind === "all" ? 255 : Number(kind));
    shown = [];
    listed.forEach(function (row, i) {
      if (!(row[F.kinds] & bits)) { return; }
      if (suite && data.suites[row[F.suite]] !== suite) { return; }
      if (perturbation && data.perturbations[row[F.perturbation]] !== perturbation) { return; }
      if (state && stateName(row) !== state) { return; }
      if (tag && tagsOf(row).indexOf(tag) < 0) { return; }
      if (query && haystacks[i].indexOf(query) < 0) { return; }
      shown.push(row);
    });
    page = 0;
    draw();
  }

  function cell(tr, text, className) { tr.appendChild(el("td", text, className)); }

  function draw() {
    var body = $("fp-rows");
    body.textContent = "";
    var pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    shown.slice(page * PAGE, page * PAGE + PAGE).forEach(function (row) {
      var tr = document.createElement("tr");
      var first = document.createElement("td");
      var open = el("button", data.cases[row[F.case]][0], "link");
      open.type = "button";
      open.addEventListener("click", function () { drill(row[F.case]); });
      first.appendChild(open);
      tr.appendChild(first);
      cell(tr, data.suites[row[F.suite]] + " / " + data.perturbations[row[F.perturbation]]);
      cell(tr, kindNames(row[F.kinds]), row[F.kinds] & 1 ? "bad" : "");
      cell(tr, short(row[F.input]), "mono");
      cell(tr, short(expectedOf(row)), "mono");
      cell(tr, short(givenOf(row)), "mono");
      cell(tr, row[F.outcome] + (row[F.state] === null ? "" : " (" + row[F.state] + ")"));
      cell(tr, conf(row[F.confidence]), "n");
      cell(tr, tagsOf(row).join(", "));
      body.appendChild(tr);
    });
    var total = listed.length;
    $("fp-count").textContent = shown.length.toLocaleString("en") + " of " + total.toLocaleString("en") +
      " listed requests match";
    $("fp-page").textContent = "page " + (page + 1) + " of " + pages;
    $("fp-prev").disabled = page === 0;
    $("fp-next").disabled = page >= pages - 1;
  }

  function drill(caseIndex) {
    var panel = $("fp-case");
    var variants = byCase[caseIndex] || [];
    $("fp-case-title").textContent = "Case " + data.cases[caseIndex][0] + ": all " + variants.length + " requests";
    $("fp-case-tags").textContent = data.cases[caseIndex][1].length ? "tags: " + data.cases[caseIndex][1].join(", ") : "no tags";
    var body = $("fp-case-rows");
    body.textContent = "";
    variants.forEach(function (row) {
      var tr = document.createElement("tr");
      if (row[F.kinds] & 1) { tr.className = "silent"; }
      cell(tr, data.suites[row[F.suite]] + " / " + data.perturbations[row[F.perturbation]] + " #" + row[F.variant] +
        " (" + row[F.split] + ")");
      cell(tr, row[F.input], "mono");
      cell(tr, expectedOf(row), "mono");
      cell(tr, (row[F.raw_error] !== null ? "raised: " + row[F.raw_error] : rawOf(row)) +
        (row[F.raw_right] ? "  ✓ right" : "  ✗ wrong") + ", confidence " + conf(row[F.raw_confidence]), "mono");
      cell(tr, givenOf(row), "mono");
      cell(tr, row[F.outcome] + (row[F.degraded] ? ", degraded" : ""));
      cell(tr, stateName(row));
      cell(tr, conf(row[F.confidence]), "n");
      cell(tr, kindNames(row[F.kinds]) || "—", row[F.kinds] & 1 ? "bad" : "");
      body.appendChild(tr);
    });
    panel.hidden = false;
    panel.scrollIntoView({block: "start"});
  }

  var kindSelect = $("fp-kind");
  kindSelect.appendChild(new Option("silent failures and changed answers", ""));
  data.kinds.forEach(function (kind) { kindSelect.appendChild(new Option(kind[2], String(kind[1]))); });
  kindSelect.appendChild(new Option("every listed request", "all"));
  if (!listed.some(function (row) { return row[F.kinds] & 3; })) { kindSelect.value = "all"; }
  fill($("fp-suite"), "suite", distinct(function (row) { return data.suites[row[F.suite]]; }));
  fill($("fp-perturbation"), "perturbation", distinct(function (row) { return data.perturbations[row[F.perturbation]]; }));
  fill($("fp-state"), "state", distinct(stateName));
  fill($("fp-tag"), "tag", distinct(tagsOf));
  ["fp-kind", "fp-suite", "fp-perturbation", "fp-state", "fp-tag"].forEach(function (id) {
    $(id).addEventListener("change", apply);
  });
  $("fp-q").addEventListener("input", apply);
  $("fp-prev").addEventListener("click", function () { page -= 1; draw(); });
  $("fp-next").addEventListener("click", function () { page += 1; draw(); });
  $("fp-case-close").addEventListener("click", function () { $("fp-case").hidden = true; });
  $("fp-cases-static").hidden = true;
  root.hidden = false;
  apply();
}());
