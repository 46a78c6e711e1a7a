"""Fault injection for tests that run the installed ``perceptiongap`` in a process of its own.

A test puts this folder on ``PYTHONPATH`` and describes one fault in ``PERCEPTIONGAP_FAULT`` (JSON):

- ``target``: ``"os.replace"`` (every rename; the atomic writes of ``perceptiongap.files`` end in
  one) or ``"module:function"`` (e.g. ``"perceptiongap.locks:_acquire"``);
- ``match``: a regular expression searched in the call's arguments (as text); only matching calls
  count;
- ``call``: which matching call (1 = the first) triggers ``action``, ``when`` (``"before"`` or
  ``"after"``) it runs:
- ``action``: ``"stop"`` (SIGSTOP itself: the test inspects it, then sends SIGCONT), ``"kill"``
  (SIGKILL to its process group when it leads one, else itself: no ``finally``, no ``atexit``), or
  ``"count"`` (only count; the number of matching calls is written to ``count_file`` at exit).

Only the process that first reads the fault acts on it, not the worker processes it starts.
"""

import atexit
import json
import os
import re
import signal

_spec = os.environ.get("PERCEPTIONGAP_FAULT")
_owner = os.environ.setdefault("PERCEPTIONGAP_FAULT_OWNER", str(os.getpid())) if _spec else None

if _spec and _owner == str(os.getpid()):
    # Ctrl-C as from a terminal: a process inherits an ignored SIGINT from its parent (some test runner
    # processes ignore it), and Python then installs no KeyboardInterrupt handler of its own.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _fault = json.loads(_spec)
    _pattern = re.compile(_fault.get("match", ""))
    _calls = 0

    def _act() -> None:
        if _fault["action"] == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        elif _fault["action"] == "kill":
            if os.getpgid(0) == os.getpid():
                os.killpg(os.getpid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)

    def _wrap(function):
        def wrapper(*args, **kwargs):
            global _calls
            matching = bool(_pattern.search(" ".join(str(a) for a in args)))
            if matching:
                _calls += 1
            triggered = matching and _calls == _fault.get("call", 0)
            if triggered and _fault.get("when", "before") == "before":
                _act()
            result = function(*args, **kwargs)
            if triggered and _fault.get("when", "before") == "after":
                _act()
            return result

        return wrapper

    if _fault["action"] == "count":
        atexit.register(lambda: open(_fault["count_file"], "w").write(str(_calls)))
    if _fault["target"] == "os.replace":
        os.replace = _wrap(os.replace)
    else:
        import importlib

        _module_name, _name = _fault["target"].split(":")
        _module = importlib.import_module(_module_name)
        setattr(_module, _name, _wrap(getattr(_module, _name)))
