// migrex console: small enhancements; every page works without them.
"use strict";
(function () {
  // 登记通报: show the fields of the chosen kind only.
  var kind = document.getElementById("kind");
  function showKind() {
    document.querySelectorAll("fieldset[data-kind]").forEach(function (f) {
      f.hidden = kind && f.getAttribute("data-kind") !== kind.value;
      // The chosen kind's own required fields, checked before sending.
      f.querySelectorAll("[data-required]").forEach(function (e) {
        e.required = !f.hidden;
      });
    });
  }
  // The reply the destination will ask for, and its deadline.
  function showPolicy() {
    var table = document.getElementById("policy");
    if (!table || !kind) return;
    var cat = document.getElementById("category").value;
    var urg = document.getElementById("urgency").value ||
      (kind.value === "PREGNANCY" ? "URGENT" : "NORMAL");
    var key = kind.value + "/" + cat + "/" + urg;
    var shown = document.getElementById("policy-shown");
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      var match = tr.getAttribute("data-key") === key;
      if (match) {
        var c = tr.children;
        shown.textContent = "对方须" + c[1].textContent + "，时限 " + c[2].textContent +
          "；今日送达则截止于 " + c[3].textContent + "。";
      }
    });
    table.hidden = true;
  }
  if (kind) {
    ["kind", "category", "urgency"].forEach(function (id) {
      document.getElementById(id).addEventListener("change", function () { showKind(); showPolicy(); });
    });
    showKind();
    showPolicy();
  }

  // 身份证号: checked as it is typed (GB 11643-1999).
  var WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  var CHECK = "10X98765432";
  function idProblem(v, mustBeWoman) {
    v = v.trim().toUpperCase();
    if (v.length === 0) return "";
    if (!/^[0-9]{17}[0-9X]$/.test(v)) {
      if (v.length < 18 && /^[0-9]*$/.test(v)) return "还差 " + (18 - v.length) + " 位（共 18 位）";
      return "应为 18 位：17 位数字加 1 位数字或 X";
    }
    var y = +v.substr(6, 4), m = +v.substr(10, 2), d = +v.substr(12, 2);
    var date = new Date(Date.UTC(y, m - 1, d));
    if (y < 1900 || date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d)
      return "出生日期 " + v.substr(6, 8) + " 不是有效日期";
    if (date > new Date()) return "出生日期 " + v.substr(6, 8) + " 在未来";
    var sum = 0;
    for (var i = 0; i < 17; i++) sum += (+v[i]) * WEIGHTS[i];
    var want = CHECK[sum % 11];
    if (v[17] !== want) return "校验码错误：第 18 位应为 " + want + "，不是 " + v[17];
    if (mustBeWoman && (+v[16]) % 2 === 1) return "第 17 位为奇数（男性）；生育、怀孕通报的当事人应为女性";
    return "";
  }
  document.querySelectorAll("input[data-idcheck]").forEach(function (input) {
    var out = document.getElementById(input.getAttribute("data-idcheck"));
    function check() {
      var woman = input.id === "id_number" && kind && (kind.value === "BIRTH" || kind.value === "PREGNANCY");
      var problem = idProblem(input.value, woman);
      out.textContent = problem ? "✗ " + problem : (input.value.trim() ? "✓ 格式与校验码正确" : "");
      out.className = problem ? "hint bad" : "hint good";
    }
    input.addEventListener("input", check);
    if (kind) kind.addEventListener("change", check);
    check();
  });

  // District pickers: find a district by code or by name.
  var list = document.getElementById("districts");
  var timer = null;
  document.querySelectorAll("input[data-district]").forEach(function (input) {
    input.addEventListener("input", function () {
      clearTimeout(timer);
      var q = input.value.trim();
      if (!list || q.length === 0 || /^[0-9]{6,12}$/.test(q)) return;
      timer = setTimeout(function () {
        fetch("/districts?q=" + encodeURIComponent(q), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : []; })
          .then(function (found) {
            list.textContent = "";
            found.forEach(function (d) {
              var o = document.createElement("option");
              o.value = d.code;
              o.label = d.code + " " + d.name;
              o.textContent = d.code + " " + d.name;
              list.appendChild(o);
            });
          });
      }, 200);
    });
  });

  // Nothing typed is lost: a form marked data-draft is kept in this tab
  // (sessionStorage, gone when the tab closes) as it is typed, and filled
  // back when its page shows again (after logging in once more, say);
  // dropped once a page says its work was done, or at logout. A page that
  // came back refused already holds what was typed.
  var DRAFT = "migrex-draft:";
  function dropDrafts() {
    Object.keys(sessionStorage).forEach(function (k) {
      if (k.indexOf(DRAFT) === 0) sessionStorage.removeItem(k);
    });
  }
  if (document.getElementById("done")) dropDrafts();
  var logout = document.getElementById("logout-form");
  if (logout) logout.addEventListener("submit", dropDrafts);
  // A refusal shown on the page (not a hidden warning).
  var refused = document.querySelector("[role=alert]:not([hidden])");
  document.querySelectorAll("form[data-draft]").forEach(function (form) {
    var key = DRAFT + location.pathname + "#" + form.id;
    function fields() {
      return Array.prototype.filter.call(form.elements, function (e) {
        return e.name && e.name !== "csrf" && e.type !== "file" && e.type !== "submit";
      });
    }
    function save() {
      var d = {};
      fields().forEach(function (e) {
        if (e.type === "radio" || e.type === "checkbox") {
          if (e.checked) d[e.name] = e.value;
        } else {
          d[e.name] = e.value;
        }
      });
      sessionStorage.setItem(key, JSON.stringify(d));
    }
    var saved = sessionStorage.getItem(key);
    if (saved && !refused) {
      var d = JSON.parse(saved);
      fields().forEach(function (e) {
        if (!(e.name in d)) return;
        if (e.type === "radio" || e.type === "checkbox") e.checked = d[e.name] === e.value;
        else e.value = d[e.name];
      });
      if (kind) { showKind(); showPolicy(); }
    }
    form.addEventListener("input", save);
    form.addEventListener("change", save);
  });

  // Forms that ask first (吊销).
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  // A warning five minutes before the session idles out (the server's
  // idle time, counted from this page's load).
  var idle = document.querySelector("[data-idle-seconds]");
  var warning = document.getElementById("idle-warning");
  if (idle && warning) {
    var seconds = parseInt(idle.getAttribute("data-idle-seconds"), 10);
    if (seconds > 300) {
      window.setTimeout(function () { warning.hidden = false; }, (seconds - 300) * 1000);
    }
  }

  // 已发送: answers that came since this browser's last look are marked 新.
  var sent = document.getElementById("sent");
  if (sent) {
    var KEY = "migrex-sent-seen";
    var seen = parseInt(localStorage.getItem(KEY) || "0", 10);
    var newest = seen;
    sent.querySelectorAll("tr[data-replied-at]").forEach(function (row) {
      var at = parseInt(row.getAttribute("data-replied-at"), 10);
      if (seen > 0 && at > seen) {
        row.classList.add("new-answer");
        var tag = document.createElement("span");
        tag.className = "tag new";
        tag.textContent = "新";
        row.cells[row.cells.length - 2].prepend(tag, " ");
      }
      if (at > newest) newest = at;
    });
    localStorage.setItem(KEY, String(newest));
  }

  // 签收所选: the heading's box ticks every row of the page that may be signed.
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="id"][form="batch-sign"]').forEach(function (b) {
        b.checked = all.checked;
      });
    });
  }

  // Print buttons (核查单).
  document.querySelectorAll("button[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
})();
