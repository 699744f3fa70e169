// Progressive enhancement for Lens: upload previews, drag and drop, and live result updates.
// Every page works without this script; it only makes them nicer.
(function () {
  "use strict";

  var ACCEPTED = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"];

  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + " KB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  // ---- classify page: previews before sending ----
  function setUpClassify() {
    var form = document.getElementById("classify-form");
    if (!form) return;
    var input = document.getElementById("files");
    var area = document.getElementById("preview-area");
    var list = document.getElementById("previews");
    var count = document.getElementById("preview-count");
    var drop = document.getElementById("dropzone");
    var submit = document.getElementById("classify-submit");
    var maxBytes = (parseInt(form.getAttribute("data-max-mb"), 10) || 50) * 1024 * 1024;
    var urls = [];

    function render() {
      urls.forEach(function (u) { URL.revokeObjectURL(u); });
      urls = [];
      list.textContent = "";
      var files = Array.prototype.slice.call(input.files || []);
      area.hidden = files.length === 0;
      count.textContent = files.length ? "(" + files.length + (files.length === 1 ? " image)" : " images)") : "";
      var total = 0;
      files.forEach(function (file) {
        total += file.size;
        var li = document.createElement("li");
        li.className = "preview";
        var ok = ACCEPTED.indexOf(file.type) !== -1;
        if (ok) {
          var img = document.createElement("img");
          var url = URL.createObjectURL(file);
          urls.push(url);
          img.src = url;
          img.alt = "Preview of " + file.name;
          li.appendChild(img);
        } else {
          var ph = document.createElement("div");
          ph.className = "preview-missing";
          ph.textContent = "No preview";
          li.appendChild(ph);
        }
        var caption = document.createElement("span");
        caption.className = "preview-name";
        caption.textContent = file.name;
        li.appendChild(caption);
        var meta = document.createElement("span");
        meta.className = "preview-meta";
        meta.textContent = ok ? formatSize(file.size) : "May not be an image";
        if (!ok) li.classList.add("preview-warn");
        li.appendChild(meta);
        list.appendChild(li);
      });
      if (total > maxBytes) {
        var warn = document.createElement("li");
        warn.className = "preview-note";
        warn.textContent = "These files are " + formatSize(total) + " together, more than the " +
          formatSize(maxBytes) + " that can be sent at once. Choose fewer images.";
        list.appendChild(warn);
      }
      if (files.length > 10) {
        var many = document.createElement("li");
        many.className = "preview-note";
        many.textContent = "Choose at most 10 images at once.";
        list.appendChild(many);
      }
    }

    input.addEventListener("change", render);
    ["dragenter", "dragover"].forEach(function (ev) {
      drop.addEventListener(ev, function (e) { e.preventDefault(); drop.classList.add("is-dragging"); });
    });
    ["dragleave", "drop"].forEach(function (ev) {
      drop.addEventListener(ev, function () { drop.classList.remove("is-dragging"); });
    });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        render();
      }
    });
    form.addEventListener("submit", function () {
      submit.disabled = true;
      submit.textContent = "Sending…";
      submit.classList.add("is-busy");
    });
    // Back/forward cache: re-enable the button and redraw previews of files still selected.
    window.addEventListener("pageshow", function () {
      submit.disabled = false;
      submit.textContent = "Classify";
      submit.classList.remove("is-busy");
      render();
    });
    // Describe the model that is selected now.
    var model = document.getElementById("model");
    var hint = document.getElementById("model-hint");
    if (model && hint) {
      model.addEventListener("change", function () {
        var opt = model.options[model.selectedIndex];
        hint.textContent = (opt && opt.getAttribute("data-description")) || "";
      });
    }
  }

  // ---- result and batch pages: follow unfinished jobs without reloading ----
  function follow(el, view, onDone) {
    var id = el.getAttribute("data-job");
    var failures = 0;
    function setText(text) {
      var t = el.querySelector("[data-status-text]");
      if (t && text) t.textContent = text;
    }
    function tick() {
      fetch("/results/" + encodeURIComponent(id) + "/status?wait=20&view=" + view, {
        headers: { "Accept": "application/json" },
        credentials: "same-origin"
      }).then(function (resp) {
        return resp.json().then(function (body) { return { status: resp.status, body: body }; });
      }).then(function (r) {
        if (r.status === 401 && r.body.redirect) {
          window.location.assign(r.body.redirect);
          return;
        }
        if (r.status !== 200) throw new Error((r.body.error && r.body.error.message) || "unavailable");
        failures = 0;
        if (r.body.finished && r.body.html) {
          onDone(r.body.html);
          return;
        }
        if (r.body.finished) {
          window.location.reload();
          return;
        }
        setText(r.body.status_text);
        tick();
      }).catch(function () {
        failures += 1;
        setText("Connection lost, trying again…");
        setTimeout(tick, Math.min(30000, 1000 * Math.pow(2, failures)));
      });
    }
    tick();
  }

  function setUpResult() {
    var panel = document.getElementById("result");
    if (!panel || panel.getAttribute("data-finished") === "true") return;
    follow(panel, "panel", function (html) {
      panel.innerHTML = html;
      panel.setAttribute("data-finished", "true");
      var title = document.getElementById("result-title");
      var top = panel.querySelector(".result-top");
      if (top) document.title = top.textContent + " — result · Lens";
      if (title) { title.setAttribute("tabindex", "-1"); }
    });
  }

  function setUpBatch() {
    var grid = document.getElementById("batch");
    if (!grid) return;
    Array.prototype.forEach.call(grid.querySelectorAll('[data-finished="false"]'), function (card) {
      follow(card, "card", function (html) {
        var tmp = document.createElement("ul");
        tmp.innerHTML = html;
        if (tmp.firstElementChild) card.replaceWith(tmp.firstElementChild);
      });
    });
  }

  function start() {
    document.documentElement.classList.add("js");
    setUpClassify();
    setUpResult();
    setUpBatch();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
