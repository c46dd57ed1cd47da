"""The page for people at ``/``: models, a drop zone, class probabilities as bars.

The page is static: its script reads ``/v1/models`` and posts the dropped
or chosen files to ``/v1/models/{name}/predict``, so it shows exactly what
the API answers. When the server has API keys, ``GET /`` without a key
answers the sign-in form instead; ``POST /login`` checks the key and sets
it as an HttpOnly, SameSite=Strict cookie, so the page, its requests and
``/docs`` work from then on.
"""

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from featpipe.serve.auth import KEY_COOKIE
from featpipe.serve.jobs.page_panel import JOBS_PANEL
from featpipe.serve.problems import Problem

router = APIRouter(include_in_schema=False)

MAX_SIGN_IN_BYTES = 4096

_STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; } table { border-collapse: collapse; } td, th { padding: .2rem .6rem; text-align: left; }
#drop { border: 2px dashed #888; border-radius: .5rem; padding: 2rem; text-align: center; margin: 1rem 0; }
#drop.over { background: #eef; } .result { margin: .8rem 0; } .label { font-weight: bold; }
.bar { display: flex; align-items: center; gap: .5rem; } .bar span:first-child { width: 8rem; }
.fill { background: #4a7; height: .8rem; } .error { color: #b00; }
"""

SIGN_IN_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>featpipe serve: sign in</title><style>{_STYLE}</style></head>
<body><h1>featpipe serve</h1>
<form method="post" action="/login"><label>API key <input type="password" name="key" autofocus></label>
<button type="submit">Sign in</button></form></body></html>
"""
"""What ``GET /`` answers (401) when the server has keys and the request carries none."""

_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>featpipe serve</title><style>{_STYLE}</style></head>
<body>
<h1>featpipe serve</h1>
<p>Models served here (<a href="/docs">API documentation</a>):</p>
<table id="models"><thead><tr><th>model</th><th>test accuracy</th><th>classes</th></tr></thead><tbody></tbody></table>
<p><label>Classify with <select id="model"></select></label></p>
<div id="drop">Drop images here, or <input type="file" id="files" accept="image/*" multiple></div>
<div id="results"></div>
<script>
const $ = (id) => document.getElementById(id);
function text(tag, content, cls) {{ const e = document.createElement(tag); e.textContent = content; if (cls) e.className = cls; return e; }}
async function loadModels() {{
  const answer = await (await fetch("/v1/models")).json();
  for (const m of answer.models) {{
    const row = document.createElement("tr");
    const accuracy = m.accuracy.test == null ? "-" : m.accuracy.test.toFixed(4);
    [m.name, accuracy, m.classes.join(", ")].forEach((v) => row.appendChild(text("td", v)));
    $("models").tBodies[0].appendChild(row);
    const option = text("option", m.name); option.value = m.name; $("model").appendChild(option);
  }}
}}
function show(prediction) {{
  const box = text("div", "", "result");
  box.appendChild(text("div", prediction.name));
  if (prediction.error) {{ box.appendChild(text("div", prediction.error, "error")); return box; }}
  box.appendChild(text("div", prediction.label, "label"));
  const values = prediction.probabilities || prediction.scores;
  const largest = Math.max(...Object.values(values).map(Math.abs)) || 1;
  for (const [name, value] of Object.entries(values).sort((a, b) => b[1] - a[1])) {{
    const bar = text("div", "", "bar");
    bar.appendChild(text("span", name));
    const fill = text("span", "", "fill"); fill.style.width = (12 * Math.abs(value) / largest) + "rem";
    bar.appendChild(fill); bar.appendChild(text("span", value.toFixed(4)));
    box.appendChild(bar);
  }}
  return box;
}}
async function classify(files) {{
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("images", file, file.name);
  const response = await fetch("/v1/models/" + encodeURIComponent($("model").value) + "/predict", {{method: "POST", body: form}});
  const answer = await response.json();
  $("results").replaceChildren();
  if (!response.ok) {{ $("results").appendChild(text("div", answer.error, "error")); return; }}
  for (const prediction of answer.predictions) $("results").appendChild(show(prediction));
}}
const drop = $("drop");
drop.addEventListener("dragover", (e) => {{ e.preventDefault(); drop.classList.add("over"); }});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {{ e.preventDefault(); drop.classList.remove("over"); classify(e.dataTransfer.files); }});
$("files").addEventListener("change", (e) => classify(e.target.files));
loadModels();
</script>
{JOBS_PANEL}
</body></html>
"""


@router.get("/", response_class=HTMLResponse)
async def page():
    """The page (the envelope answers the sign-in form instead when a key is needed and missing)."""
    return HTMLResponse(_PAGE)


@router.post("/login")
async def sign_in(request: Request):
    """Check the form's key; on success set it as a cookie and go back to the page."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SIGN_IN_BYTES:
            raise Problem(413, "sign-in form too large")
    key = parse_qs(body.decode("utf-8", "replace")).get("key", [""])[0]
    checker = request.app.state.service.key_checker
    if not checker.enabled or not checker.matches(key):
        return HTMLResponse(SIGN_IN_PAGE, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response
