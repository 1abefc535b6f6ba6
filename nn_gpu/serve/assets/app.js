// The page of `nn-gpu serve`: canvases to write on, and what the server's
// model reads there, asked for (debounced) as the strokes change.
//
// Each panel carries data-state: "empty" (nothing written), "waiting" (a
// change not yet sent), "reading" (a request under way), "done" or "error"
// (the answer to the latest strokes is shown).
"use strict";

(function () {
  const READ_AFTER_STROKE = 300;  // ms after a stroke ends
  const READ_WHILE_WRITING = 700; // ms of a pause in the middle of a stroke

  // ------------------------------------------------------------- a board
  // A canvas of strokes: [{width, points: [[x, y], ...]}], in the canvas's
  // own pixels (what the server gets), drawn black on white.
  function Board(canvas, widthInput, onChange) {
    const context = canvas.getContext("2d");
    const strokes = [];
    let current = null;

    function point(event) {
      const rect = canvas.getBoundingClientRect();
      return [(event.clientX - rect.left) * canvas.width / rect.width,
              (event.clientY - rect.top) * canvas.height / rect.height];
    }

    function drawStroke(stroke) {
      const p = stroke.points;
      context.lineWidth = stroke.width;
      context.beginPath();
      if (p.length === 1) {
        context.arc(p[0][0], p[0][1], stroke.width / 2, 0, 2 * Math.PI);
        context.fill();
        return;
      }
      context.moveTo(p[0][0], p[0][1]);
      for (let i = 1; i < p.length; i++) context.lineTo(p[i][0], p[i][1]);
      context.stroke();
    }

    function redraw() {
      context.fillStyle = "#fff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      context.fillStyle = context.strokeStyle = "#000";
      context.lineCap = context.lineJoin = "round";
      strokes.forEach(drawStroke);
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      current = {id: event.pointerId, width: Number(widthInput.value), points: [point(event)]};
      strokes.push(current);
      redraw();
      onChange(false);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!current || event.pointerId !== current.id) return;
      event.preventDefault();
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      (events.length ? events : [event]).forEach(function (e) { current.points.push(point(e)); });
      redraw();
      onChange(false);
    });
    function end(event) {
      if (!current || event.pointerId !== current.id) return;
      current = null;
      onChange(true);
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);

    redraw();
    return {
      canvas: canvas,
      isEmpty: function () { return strokes.length === 0; },
      undo: function () { current = null; strokes.pop(); redraw(); onChange(true); },
      clear: function () { current = null; strokes.length = 0; redraw(); onChange(true); },
      image: function () {
        return new Promise(function (resolve) { canvas.toBlob(resolve, "image/png"); });
      },
    };
  }

  // ------------------------------------------------------- live reading
  // Asks `url` about the board's image a moment after each change, one
  // request at a time; shows the answer to the latest strokes only.
  function LiveReading(panel, url, show, clear) {
    const status = panel.querySelector(".status");
    let version = 0, timer = null, busy = false;

    function setState(state, message) {
      panel.dataset.state = state;
      status.textContent = message;
      status.classList.toggle("error", state === "error");
    }

    async function send(board) {
      timer = null;
      if (busy || board.isEmpty()) return;  // (busy: sent again when the answer comes)
      busy = true;
      const asked = version;
      setState("reading", "Reading…");
      let answer, problem = null;
      try {
        const response = await fetch(url, {method: "POST", body: await board.image(),
                                           headers: {"Content-Type": "image/png"}});
        answer = await response.json();
        if (!response.ok) problem = answer.error || response.statusText;
      } catch (error) {
        problem = "no answer from the server (is nn-gpu serve still running?)";
      }
      busy = false;
      if (asked !== version) {  // written on meanwhile: read the new strokes
        if (!timer) send(board);
        return;
      }
      if (problem) {
        clear();
        setState("error", problem.replace(/^[^:]*\.png: /, ""));
      } else {
        show(answer);
        setState("done", "");
      }
    }

    return function changed(board, strokeEnded) {
      version++;
      clearTimeout(timer);
      timer = null;
      if (board.isEmpty()) {
        clear();
        setState("empty", panel.dataset.empty);
        return;
      }
      if (panel.dataset.state !== "reading") setState("waiting", "…");
      timer = setTimeout(function () { send(board); },
                         strokeEnded ? READ_AFTER_STROKE : READ_WHILE_WRITING);
    };
  }

  // ------------------------------------------------------------ drawing
  function drawView(canvas, levels) {
    const context = canvas.getContext("2d");
    const image = context.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      image.data.set([levels[i], levels[i], levels[i], 255], 4 * i);
    }
    context.putImageData(image, 0, 0);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A probability as a percentage: whole ones, and tenths above 99 (rounded
  // down there, so that 100% means at least 0.99995).
  function percent(p) {
    return p > 0.99 ? (Math.floor(p * 1000) / 10).toFixed(1) + "%" : Math.round(100 * p) + "%";
  }

  function withoutViews(answer) {
    const copy = Object.assign({}, answer);
    delete copy.views;
    return copy;
  }

  // --------------------------------------------------------- the number
  function numberPanel() {
    const panel = document.getElementById("number");
    const overlay = document.getElementById("number-boxes").getContext("2d");
    const digits = document.getElementById("number-digits");
    const pieces = document.getElementById("number-pieces");
    const json = document.getElementById("number-json");
    panel.dataset.empty = "Write a number above.";

    function clear() {
      overlay.clearRect(0, 0, overlay.canvas.width, overlay.canvas.height);
      digits.textContent = "–";
      pieces.replaceChildren();
      json.textContent = "";
    }

    function show(answer) {
      clear();
      digits.textContent = answer.digits;
      overlay.lineWidth = 3;
      overlay.font = "bold 20px system-ui, sans-serif";
      overlay.textBaseline = "bottom";
      overlay.textAlign = "center";
      let labelsEnd = -Infinity;  // right end of the last label above the boxes
      answer.boxes.forEach(function (box, i) {
        const [x0, y0, x1, y1] = box;
        const p = answer.probabilities[i];
        overlay.strokeStyle = overlay.fillStyle = p >= 0.8 ? "#1c7ed6" : "#e8590c";
        overlay.strokeRect(x0 - 4, y0 - 4, x1 - x0 + 8, y1 - y0 + 8);
        const label = answer.digits[i] + " " + percent(p);
        const half = overlay.measureText(label).width / 2, middle = (x0 + x1) / 2;
        if (y0 - 8 > 24 && middle - half > labelsEnd + 6) {  // above, where there is room
          overlay.fillText(label, middle, y0 - 8);
          labelsEnd = middle + half;
        } else {
          overlay.fillText(label, middle, y1 + 30);
        }

        const item = element("li", "piece");
        const view = element("canvas", "view");
        view.width = view.height = 28;
        drawView(view, answer.views[i]);
        item.append(view, element("span", "digit", answer.digits[i]));
        const bar = element("span", "chance-bar");
        const fill = element("span", "fill");
        fill.style.width = (100 * p).toFixed(1) + "%";
        bar.append(fill);
        item.append(bar, element("span", "chance", percent(p)));
        item.title = "read as " + answer.digits[i] + " with probability " + p;
        pieces.append(item);
      });
      json.textContent = JSON.stringify(withoutViews(answer), null, 1);
    }

    const live = LiveReading(panel, "/api/read?file=canvas.png&views=1", show, clear);
    return setUp("number", live);
  }

  // ---------------------------------------------------------- one digit
  function digitPanel() {
    const panel = document.getElementById("digit");
    const view = document.getElementById("digit-view");
    const answerNode = document.getElementById("digit-answer");
    const chance = document.getElementById("digit-chance");
    const bars = document.getElementById("digit-bars");
    const json = document.getElementById("digit-json");
    panel.dataset.empty = "Write a digit above.";

    function drawBars(activations, winner) {
      bars.replaceChildren();
      const top = Math.max(1, Math.max.apply(null, activations));
      activations.forEach(function (a, i) {
        const item = element("li", i === winner ? "bar winner" : "bar");
        const column = element("span", "column");
        const fill = element("span", "fill");
        fill.style.height = (100 * Math.max(0, a) / top).toFixed(1) + "%";
        column.append(fill);
        item.append(element("span", "value", a.toFixed(2)), column,
                    element("span", "name", activations.length === 1 ? "yes" : String(i)));
        item.dataset.activation = a;
        bars.append(item);
      });
    }

    function clear() {
      view.getContext("2d").clearRect(0, 0, 28, 28);
      answerNode.textContent = "–";
      chance.textContent = "";
      drawBars(new Array(10).fill(0), -1);
      json.textContent = "";
    }

    function show(answer) {
      drawView(view, answer.input);
      answerNode.textContent = String(answer.digit);
      chance.textContent = "probability " + answer.probabilities[answer.digit].toFixed(2);
      drawBars(answer.activations, answer.activations.length === 1 ? -1 : answer.digit);
      const copy = Object.assign({}, answer);
      delete copy.input;
      json.textContent = JSON.stringify(copy, null, 1);
    }

    clear();
    const live = LiveReading(panel, "/api/digit?file=digit.png", show, clear);
    return setUp("digit", live);
  }

  function setUp(name, live) {
    let board = null;
    board = Board(document.getElementById(name + "-ink"),
                  document.getElementById(name + "-width"),
                  function (ended) { live(board, ended); });
    document.getElementById(name + "-undo").addEventListener("click", function () {
      board.undo();
    });
    document.getElementById(name + "-clear").addEventListener("click", function () {
      board.clear();
    });
    return board;
  }

  // ------------------------------------------------------ tabs and model
  function tabs(boards) {
    const buttons = document.querySelectorAll("[role=tab]");
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (other) {
          const selected = other === button;
          other.setAttribute("aria-selected", String(selected));
          document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
        });
      });
    });
    document.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "z") {
        const shown = document.querySelector(".panel:not([hidden])");
        boards[shown.id].undo();
        event.preventDefault();
      }
    });
  }

  async function describeModel() {
    const node = document.getElementById("model");
    try {
      const about = await (await fetch("/api/model")).json();
      node.textContent = "Model " + about.model + ": " + about.kind + ", layers " +
        about.sizes.join(" → ") + "; whole-digit check " + (about.check ? "on" : "off");
    } catch (error) {
      node.textContent = "The server does not answer: is nn-gpu serve running?";
    }
  }

  tabs({number: numberPanel(), digit: digitPanel()});
  describeModel();
})();
