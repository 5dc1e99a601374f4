// fedsynth web app: small progressive enhancements; every page works without them.
"use strict";

// Run page: follow the run's state and log through the REST API, reload once it ends.
function followRun(section) {
  const id = section.dataset.run;
  const initial = section.dataset.status;
  const log = document.getElementById("log");
  let next = Number(log.dataset.next || 0);
  const active = (s) => s === "queued" || s === "running";
  if (!active(initial)) return;

  async function tick() {
    try {
      const run = await (await fetch(`/api/runs/${id}`, { credentials: "same-origin" })).json();
      document.getElementById("status").textContent = run.status;
      document.getElementById("status").className = `badge status-${run.status}`;
      document.getElementById("stage").textContent = run.stage === run.status ? "" : run.stage;
      document.getElementById("progress").value = run.progress;
      document.getElementById("percent").textContent = `${Math.round(100 * run.progress)} %`;
      const body = await (await fetch(`/api/runs/${id}/log?after=${next}`, { credentials: "same-origin" })).json();
      for (const line of body.lines) {
        log.append(`${line.time.slice(11, 19)}  ${line.message}\n`);
      }
      if (body.lines.length) log.scrollTop = log.scrollHeight;
      next = body.next;
      if (!active(run.status)) { window.location.reload(); return; }
    } catch (error) {
      // The server may be restarting: try again.
    }
    window.setTimeout(tick, 1000);
  }
  window.setTimeout(tick, 500);
}

// New-run form: show the federated settings only for federated runs, and the options that the
// chosen generator takes.
function runForm(form) {
  const federated = document.getElementById("federated");
  const generator = document.getElementById("generator");
  const update = () => {
    const mode = form.querySelector("input[name=mode]:checked");
    federated.hidden = !mode || mode.value !== "federated";
    const option = generator.selectedOptions[0];
    document.getElementById("epochs").disabled = option.dataset.epochs !== "true";
    document.getElementById("epsilon").disabled = option.dataset.dp !== "true";
  };
  form.addEventListener("change", update);
  update();
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.querySelector("[data-run]");
  if (run) followRun(run);
  const form = document.getElementById("run-form");
  if (form) runForm(form);
});
