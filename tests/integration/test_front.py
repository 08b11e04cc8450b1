"""serve's worker class under gunicorn, with a WSGI app that takes its time: stopping is graceful."""
from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

LISTENING = re.compile(rb"Listening at: http://127\.0\.0\.1:(\d+)")

# gunicorn with serve's options and an app that answers after a second and a half.
SERVER = textwrap.dedent("""
    import os
    import time
    from gunicorn.app.base import BaseApplication
    from plugin.front import server_options

    def app(environ, start_response):
        time.sleep(1.5)
        os.write(1, b"answering\\n")  # one write: both workers share the log
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    def stopping():
        os.write(1, b"stopping\\n")

    class Server(BaseApplication):
        def load_config(self):
            options = {**server_options("127.0.0.1", 0, 2, 2, stopping=stopping), "control_socket_disable": True}
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()
""")


def test_a_request_being_served_when_the_server_is_told_to_stop_is_answered_before_it_exits(tmp_path: Path):
    """And each worker's stopping hook runs once, as it is told to stop, before that request is answered."""
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", SERVER], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (match := LISTENING.search(log_path.read_bytes())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        time.sleep(1.0)  # the workers are up
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        connection.request("GET", "/")
        time.sleep(0.5)  # the app is working on it
        process.send_signal(signal.SIGTERM)
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"done")
        assert process.wait(timeout=30) == 0
        lines = [line for line in log_path.read_text().splitlines() if line in ("stopping", "answering")]
        assert lines == ["stopping", "stopping", "answering"], log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
