"""The jobs panel of the page at ``/``: every job with a progress bar that updates while it runs.

:data:`JOBS_PANEL` is HTML and a script the page includes as they are. The
script reads ``GET /v1/jobs`` every :data:`REFRESH_MILLISECONDS` (with the
page's credentials: the sign-in cookie), and stays hidden when the server
has no job roots (404). It builds the rows with ``textContent`` only, so
nothing a job request holds is ever run as HTML.
"""

REFRESH_MILLISECONDS = 1000

JOBS_PANEL = """
<section id="jobs" hidden>
<h2>Jobs</h2>
<table id="job-table"><thead><tr><th>job</th><th>kind</th><th>state</th><th>output</th><th>progress</th>
<th>images/s</th><th>skipped</th><th>error</th></tr></thead><tbody></tbody></table>
</section>
<script>
(() => {
  const cell = (row, content) => { const td = document.createElement("td"); td.textContent = content; row.appendChild(td); return td; };
  async function refreshJobs() {
    let answer;
    try {
      const response = await fetch("/v1/jobs?limit=50");
      if (!response.ok) return;
      answer = await response.json();
    } catch (error) { return; }
    document.getElementById("jobs").hidden = false;
    const rows = answer.jobs.map((job) => {
      const row = document.createElement("tr");
      row.dataset.id = job.id; row.dataset.state = job.state;
      [job.id, job.kind, job.state, job.output].forEach((value) => cell(row, value));
      const p = job.progress, bar = document.createElement("progress");
      if (p.images_total) { bar.max = p.images_total; bar.value = p.images_done; }
      else if (job.state === "done") { bar.max = 1; bar.value = 1; }
      const progress = cell(row, "");
      progress.appendChild(bar);
      progress.appendChild(document.createTextNode(p.images_total ? ` ${p.images_done}/${p.images_total}` : ""));
      cell(row, p.images_per_second == null ? "" : p.images_per_second.toFixed(1));
      cell(row, p.skipped == null ? "" : String(p.skipped));
      cell(row, job.error || "");
      return row;
    });
    document.querySelector("#job-table tbody").replaceChildren(...rows);
  }
  refreshJobs();
  setInterval(refreshJobs, __REFRESH_MS__);
})();
</script>
""".replace("__REFRESH_MS__", str(REFRESH_MILLISECONDS))
"""HTML and script of the panel, placed before the page's ``</body>``."""
