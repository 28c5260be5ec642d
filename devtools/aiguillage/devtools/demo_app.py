"""The demo app of ``make dev`` on the node: an ordinary program using the official openai SDK.

It runs in its own image (``hack/demo/Containerfile``: Python, the openai SDK and this file,
nothing of Aiguillage) in a pod next to the Aiguillage sidecar, and knows only what any app
would: the sidecar's address (``OPENAI_BASE_URL``, which injection sets; 127.0.0.1:4000 when
unset) and the model names of its namespace's routes. Every ``DEMO_INTERVAL`` seconds it asks
each model of ``DEMO_MODELS`` one question and prints one JSON line per answer: the answer,
which provider served it and where, or the error. ``make dev`` reads these lines from the pod's
log. Stdlib and openai only: it must run where the aiguillage package is not installed.
"""

from __future__ import annotations

import json
import os
import sys
import time

import openai


def ask(client: openai.OpenAI, model: str) -> dict[str, object]:
    """One question to ``model``: the answer and the headers saying who served it."""
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "Say hello"}]
        )
    except openai.APIStatusError as exc:
        return {"model": model, "status": exc.status_code, "error": exc.message}
    except openai.APIConnectionError as exc:
        return {"model": model, "error": f"cannot reach the sidecar: {exc}"}
    completion = raw.parse()
    return {
        "model": model,
        "answer": completion.choices[0].message.content,
        "provider": raw.headers.get("x-aiguillage-provider"),
        "location": raw.headers.get("x-aiguillage-location"),
        "attempts": raw.headers.get("x-aiguillage-attempts"),
    }


def main() -> int:
    models = [m for m in os.environ.get("DEMO_MODELS", "summarizer").split(",") if m]
    interval = float(os.environ.get("DEMO_INTERVAL", "30"))
    client = openai.OpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:4000/v1"),
        api_key=os.environ.get("OPENAI_API_KEY", "apps-hold-no-key"),
        max_retries=0,
        timeout=30,
    )
    while True:
        for model in models:
            print(json.dumps(ask(client, model)), flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
