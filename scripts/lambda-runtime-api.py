#!/usr/bin/env python3
"""A minimal Lambda Runtime API for one function process, with real deadlines.

cargo-lambda's emulator sends a constant `Lambda-Runtime-Deadline-Ms` (600000, i.e. 1970),
so a time-boxed function cannot be tested through it. This one hands out the given
events in order, each with the deadline `--deadline-secs` from the moment it is handed
out, prints one JSON line per answer ({"response": …} or {"error": …}) and exits when
every event is answered (or after --timeout seconds, exit 1).

Usage: lambda-runtime-api.py --port P --deadline-secs N EVENT_JSON [EVENT_JSON ...]
then run the bootstrap with AWS_LAMBDA_RUNTIME_API=127.0.0.1:P.
"""
import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--deadline-secs", type=float, required=True)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--until-done", action="store_true")
    ap.add_argument("events", nargs="+")
    args = ap.parse_args()

    pending = list(args.events)
    answered = []
    done = threading.Event()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def _reply(self, code, body=b"", headers=None):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != f"{PREFIX}/invocation/next":
                return self._reply(404)
            while True:
                with lock:
                    if pending:
                        event = pending.pop(0)
                        break
                if done.wait(0.05):
                    return self._reply(410)
            deadline_ms = int((time.time() + args.deadline_secs) * 1000)
            self._reply(200, event.encode(), {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": str(uuid.uuid4()),
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn":
                    "arn:aws:lambda:ap-northeast-1:123456789012:function:emulated",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
            })

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.rsplit("/", 1)[-1]
            if kind not in ("response", "error"):
                return self._reply(202)
            try:
                doc = json.loads(body or b"null")
            except ValueError:
                doc = body.decode(errors="replace")
            print(json.dumps({kind: doc}), flush=True)
            self._reply(202)
            with lock:
                answered.append(kind)
                finished = args.until_done and isinstance(doc, dict) and doc.get("done") is True
                if finished or len(answered) == len(args.events):
                    done.set()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ok = done.wait(args.timeout)
    server.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
