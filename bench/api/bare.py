"""The status ceiling: a bare Litestar JSON endpoint on the same server stack (uvicorn, one process)."""

from __future__ import annotations

import sys

import uvicorn
from litestar import Litestar, get

BODY = {"task_id": "sora2" + "0" * 32, "status": "running", "progress": 42}


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, object]:
    return BODY


app = Litestar([bare])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
