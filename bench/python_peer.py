"""What a team would otherwise run: a Python recommendation service (Starlette on uvicorn, numpy)
serving a Duet production bundle as Duet's Serve does. Same lists: the training history, request
exclusions and unavailable items are filtered; an unknown user or one without history gets the
popularity list; ties go to the lower item row. No exposure log (Duet writes one, durably).

Run: PEER_BUNDLE=<bundle folder> uvicorn --workers 2 --app-dir bench python_peer:app
"""
import json
import os

import numpy as np
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FOLDER = os.environ["PEER_BUNDLE"]
manifest = json.load(open(os.path.join(FOLDER, "manifest.json")))
users, items, dim = manifest["counts"]["users"], manifest["counts"]["items"], manifest["dimension"]


def read_ids(name):
    with open(os.path.join(FOLDER, name), encoding="utf-8") as f:
        ids = f.read().split("\n")
    return ids[:-1] if ids and ids[-1] == "" else ids


user_ids, item_ids = read_ids("users.ids"), read_ids("items.ids")
user_row = {u: i for i, u in enumerate(user_ids)}
item_row = {t: i for i, t in enumerate(item_ids)}
item_factors = np.fromfile(os.path.join(FOLDER, "item_factors.f32"), dtype="<f4").reshape(items, dim) if dim else None
user_factors = np.fromfile(os.path.join(FOLDER, "user_factors.f32"), dtype="<f4").reshape(users, dim) if dim else None
popularity = np.fromfile(os.path.join(FOLDER, "popularity.f32"), dtype="<f4")
raw = np.fromfile(os.path.join(FOLDER, "history.csr"), dtype=np.uint8)
starts = raw[: (users + 1) * 8].view("<u8")
history = raw[(users + 1) * 8:].view("<u4")
titles, artists = {}, {}
available = np.ones(items, dtype=bool)
catalog_path = os.path.join(FOLDER, "catalog.jsonl")
if os.path.exists(catalog_path):
    with open(catalog_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            entry = json.loads(line)
            row = item_row.get(entry["id"])
            if row is None:
                continue
            titles[row], artists[row] = entry.get("title"), entry.get("artist")
            if entry.get("available") is False:
                available[row] = False
unavailable = np.flatnonzero(~available)
rows = np.arange(items)
# Popularity order: best first, ties to the lower row; unavailable items never listed.
popular = [int(r) for r in np.lexsort((rows, -popularity)) if available[r]][:5000]


def item(row, score):
    out = {"id": item_ids[row], "score": float(score)}
    if titles.get(row) is not None:
        out["title"] = titles[row]
    if artists.get(row) is not None:
        out["artist"] = artists[row]
    return out


def recommend(request):
    user = request.path_params["user"]
    try:
        n = int(request.query_params.get("n", "20"))
    except ValueError:
        return JSONResponse({"error": "n must be an integer", "status": 400}, status_code=400)
    if not 1 <= n <= 1000:
        return JSONResponse({"error": "n must be in 1…1000", "status": 400}, status_code=400)
    excluded = {item_row[t] for t in request.query_params.get("exclude", "").split(",") if t in item_row}
    row = user_row.get(user)
    seen = history[int(starts[row]):int(starts[row + 1])] if row is not None else history[:0]
    if row is None or len(seen) == 0 or not dim:
        excluded.update(int(t) for t in seen)
        chosen = [r for r in popular if r not in excluded][:n]
        reason = "unknown-user" if row is None else ("popularity-model" if not dim else "short-history")
        body = {"user": user, "fallback": reason, "index": "popularity", "items": [item(r, popularity[r]) for r in chosen]}
    else:
        scores = item_factors @ user_factors[row]
        scores[unavailable] = -np.inf
        scores[seen] = -np.inf
        if excluded:
            scores[list(excluded)] = -np.inf
        k = min(n, items)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        body = {"user": user, "index": "exact", "items": [item(int(r), scores[r]) for r in top if scores[r] > -np.inf]}
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), media_type="application/json")


def livez(request):
    return Response('{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/v1/users/{user}/recommendations", recommend), Route("/livez", livez)])
