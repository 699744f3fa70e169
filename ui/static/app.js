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
      if (typeof describe === "function") describe();
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
          // Named like a picture but not one: say so instead of a broken image.
          img.addEventListener("error", function () {
            var ph = document.createElement("div");
            ph.className = "preview-missing";
            ph.textContent = "No preview";
            if (img.parentNode) img.parentNode.replaceChild(ph, img);
          });
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

    var summary = document.getElementById("file-summary");
    var camera = document.getElementById("camera");

    // Adds files (from a drop, a paste or the camera) to the form's file input.
    function addFiles(fileList) {
      var images = Array.prototype.filter.call(fileList || [], function (f) {
        return !f.type || f.type.indexOf("image/") === 0;
      });
      if (!images.length || typeof DataTransfer === "undefined") return;
      var dt = new DataTransfer();
      Array.prototype.forEach.call(input.files || [], function (f) { dt.items.add(f); });
      images.forEach(function (f, i) {
        // Pasted images are all called "image.png": number them so they can be told apart.
        var name = f.name || "pasted.png";
        if (name === "image.png") name = "pasted-" + (dt.files.length + 1) + ".png";
        var file = name === f.name ? f : new File([f], name, { type: f.type, lastModified: Date.now() + i });
        dt.items.add(file);
      });
      input.files = dt.files;
      render();
    }

    function describe() {
      var n = (input.files || []).length;
      if (summary) summary.textContent = n === 0 ? "No photo chosen yet" : (n === 1 ? "1 photo chosen: " + input.files[0].name : n + " photos chosen");
    }

    input.addEventListener("change", function () { render(); });
    if (camera) {
      camera.addEventListener("change", function () {
        addFiles(camera.files);
        camera.value = "";
      });
    }
    // Drag and drop anywhere on the page.
    var depth = 0;
    document.addEventListener("dragenter", function (e) {
      if (!e.dataTransfer || Array.prototype.indexOf.call(e.dataTransfer.types || [], "Files") === -1) return;
      e.preventDefault();
      depth += 1;
      document.body.classList.add("is-dragging");
      drop.classList.add("is-dragging");
    });
    document.addEventListener("dragover", function (e) { e.preventDefault(); });
    document.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (depth === 0) { document.body.classList.remove("is-dragging"); drop.classList.remove("is-dragging"); }
    });
    document.addEventListener("drop", function (e) {
      e.preventDefault();
      depth = 0;
      document.body.classList.remove("is-dragging");
      drop.classList.remove("is-dragging");
      if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
    });
    // Paste an image from the clipboard (a screenshot, a copied picture).
    document.addEventListener("paste", function (e) {
      var cd = e.clipboardData;
      if (!cd) return;
      var files = Array.prototype.slice.call(cd.files || []);
      if (!files.length && cd.items) {
        Array.prototype.forEach.call(cd.items, function (it) {
          if (it.kind === "file") { var f = it.getAsFile(); if (f) files.push(f); }
        });
      }
      if (files.length) { e.preventDefault(); addFiles(files); }
    });

    // Sends each file on its own request, so each shows its own progress; then goes to the
    // result (one) or the batch page (several). Without this script the form posts as usual.
    function sendEach(files) {
      var csrf = form.querySelector('input[name="csrf"]').value;
      var modelSel = document.getElementById("model");
      var items = list.querySelectorAll(".preview");
      var ids = [];
      var failed = 0;
      var left = files.length;
      function finish() {
        if (failed === 0 && ids.length === 1) { window.location.assign("/results/" + encodeURIComponent(ids[0])); return; }
        if (failed === 0 && ids.length > 1) { window.location.assign("/batch?ids=" + encodeURIComponent(ids.join(","))); return; }
        submit.disabled = false;
        submit.classList.remove("is-busy");
        submit.textContent = "Classify";
        if (ids.length) {
          var li = document.createElement("li");
          li.className = "preview-note";
          var a = document.createElement("a");
          a.href = ids.length === 1 ? "/results/" + encodeURIComponent(ids[0]) : "/batch?ids=" + encodeURIComponent(ids.join(","));
          a.className = "button";
          a.textContent = "See the results of the others";
          li.appendChild(a);
          list.appendChild(li);
        }
      }
      files.forEach(function (file, i) {
        var li = items[i];
        var bar = document.createElement("progress");
        bar.max = 100; bar.value = 0;
        bar.className = "preview-progress";
        bar.setAttribute("aria-label", "Sending " + file.name);
        if (li) li.appendChild(bar);
        var fd = new FormData();
        fd.append("csrf", csrf);
        if (modelSel) fd.append("model", modelSel.value);
        fd.append("files", file, file.name);
        var xhr = new XMLHttpRequest();
        xhr.open("POST", form.action);
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total);
        });
        xhr.addEventListener("load", function () {
          var m = /\/results\/([0-9a-fA-F-]+)/.exec(xhr.responseURL || "");
          if (xhr.status < 400 && m) {
            ids[i] = m[1];
            bar.value = 100;
            if (li) li.classList.add("preview-sent");
          } else {
            failed += 1;
            var why = "Not sent";
            try {
              var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
              var n = doc.querySelector(".notice-error");
              if (n) why = n.textContent.trim();
            } catch (err) { /* keep the short text */ }
            if (bar.parentNode) bar.parentNode.removeChild(bar);
            if (li) {
              li.classList.add("preview-warn");
              var p = document.createElement("span");
              p.className = "preview-error";
              p.setAttribute("role", "alert");
              p.textContent = why;
              li.appendChild(p);
            }
          }
          left -= 1;
          if (left === 0) { ids = ids.filter(Boolean); finish(); }
        });
        xhr.addEventListener("error", function () {
          failed += 1; left -= 1;
          if (li) li.classList.add("preview-warn");
          if (left === 0) { ids = ids.filter(Boolean); finish(); }
        });
        xhr.send(fd);
      });
    }

    form.addEventListener("submit", function (e) {
      var files = Array.prototype.slice.call(input.files || []);
      submit.disabled = true;
      submit.textContent = "Sending…";
      submit.classList.add("is-busy");
      if (files.length && files.length <= 10 && typeof FormData !== "undefined" && window.XMLHttpRequest) {
        e.preventDefault();
        sendEach(files);
      }
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
      var name = document.querySelector(".result-name");
      if (name) document.title = name.textContent + (top && !panel.querySelector(".result-unsure") ? " — " + top.textContent : " — not sure") + " · Lens";
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
