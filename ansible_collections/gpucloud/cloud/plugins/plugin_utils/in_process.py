# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Run a gpucloud module inside the Ansible worker when it would run on the controller's own Python anyway.

gpucloud's modules nearly always run on the controller (``hosts: localhost`` or ``delegate_to: localhost``,
connection ``local``, the interpreter being the controller's Python). Ansible then starts a new interpreter
for each task, unpacks AnsiballZ and imports pydantic and httpx again: about 0.25 s of CPU per task that buys
nothing. The linear and free strategies load a task's action plugin class in the ``ansible-playbook`` process
before forking the task's worker, so this module, imported with that class, loads gpucloud there once per
playbook; every forked worker inherits it and runs the module's own ``main()`` with the arguments Ansible
would have sent, its output parsed by Ansible's own result handling.

Only when the module process would have been this very Python, on this machine, as this user, with the same
environment (see :meth:`GpuCloudModuleAction.refusal`); in every other case, and when the user opts out with
``GPUCLOUD_ANSIBLE_IN_PROCESS=false`` or the variable ``gpucloud_in_process: false``, the task runs exactly as
it does without this plugin (``ansible.builtin.normal``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import locale
import os
import sys
from collections.abc import Sequence

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as module_warnings
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

# The module-execution internals of ansible-core 2.19 this relies on. Where any is missing (2.18, or a later
# release that changed them), every task takes the module process: never a half-working in-process run.
try:
    from ansible.executor.interpreter_discovery import InterpreterDiscoveryRequiredError
    from ansible.executor.module_common import _get_shebang
    from ansible.module_utils import _internal as module_internal
    from ansible.module_utils._internal import _traceback
    from ansible.module_utils._internal._ansiballz import _loader
    from ansible.module_utils.common.json import Direction, get_module_encoder

    HAS_HOOKS = all(
        hasattr(owner, name)
        for owner, name in (
            (basic, "_ANSIBLE_ARGS"),
            (basic, "_ANSIBLE_PROFILE"),
            (module_internal, "is_controller"),
            (_traceback, "_is_traceback_enabled"),
            (_traceback, "_is_module_traceback_enabled"),
            (_traceback, "_module_tracebacks_enabled_events"),
            (_loader, "_handle_exception"),
            (module_warnings, "_global_warnings"),
            (module_warnings, "_global_deprecations"),
        )
    )
except ImportError:
    HAS_HOOKS = False

display = Display()

OPT_OUT_ENV = "GPUCLOUD_ANSIBLE_IN_PROCESS"
OPT_OUT_VAR = "gpucloud_in_process"
FALSE_WORDS = ("0", "false", "no", "off", "n", "f")
MODULES = "ansible_collections.gpucloud.cloud.plugins.modules."
MODULE_UTILS = "ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud"
# Serialization profile of a module without METADATA (Ansible's default; no gpucloud module declares one).
PROFILE = "legacy"
# The module process reads its own PYDANTIC_DISABLE_PLUGINS default (module_utils/gpucloud.py); the warm-up
# must not leave it set in ansible-playbook itself.
PYDANTIC_ENV = "PYDANTIC_DISABLE_PLUGINS"
# Model modules whose validators a module task builds (deferred in gpucloud: built here once instead).
MODEL_MODULES = ("gpucloud.config", "gpucloud.models", "gpucloud.wire")


@contextlib.contextmanager
def _env_restored(name):
    """Put the variable ``name`` back as it was (set, or not) when the block ends."""
    before = os.environ.get(name)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def preload(module_name):
    """Import a gpucloud module and what its tasks use, and build the validators. Returns (module, None), or
    (None, why) when that fails: the task then takes the module process, which reports the problem as before.

    Runs in ``ansible-playbook`` (the class is loaded there): imports only, no thread, connection, config file
    or credential is touched, and the environment is left as it was.
    """
    with _env_restored(PYDANTIC_ENV):
        os.environ.setdefault(PYDANTIC_ENV, "__all__")  # as the module process does: no entry-point scan
        try:
            module = importlib.import_module(MODULES + module_name)
            if not getattr(sys.modules.get(MODULE_UTILS), "HAS_GPUCLOUD", False):
                return None, "gpucloud is not importable in the controller"
            _build_validators()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return None, f"gpucloud could not be loaded in the controller: {type(exc).__name__}: {exc}"
    return module, None


def _build_validators():
    from pydantic import BaseModel

    from gpucloud import ensure  # noqa: F401  pylint: disable=unused-import
    from gpucloud.providers import implemented, provider_class

    for name in implemented():
        provider_class(name)  # imports the adapter (and httpx, tenacity with it)
    for module_name in MODEL_MODULES:
        module = importlib.import_module(module_name)
        for value in list(vars(module).values()):
            ours = isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module_name
            if ours and not value.__pydantic_complete__:
                value.model_rebuild(force=True)


def same_python(interpreter):
    """Whether ``interpreter`` starts this very Python: the same binary from the same directory (a virtualenv's
    ``bin/python`` links to the system binary, but only the venv's own path gives the venv's packages)."""
    if not interpreter or not os.path.isabs(interpreter):
        return False  # a bare name is looked up on the target's PATH: leave it to the module process
    here = sys.executable
    real = os.path.realpath
    return real(interpreter) == real(here) and real(os.path.dirname(interpreter)) == real(os.path.dirname(here))


def opted_out(value):
    return str(value).strip().lower() in FALSE_WORDS


class ModuleRun:
    """One module ``main()`` in this process, set up as the AnsiballZ wrapper sets up a module process."""

    def __init__(self, module, args, environment):
        self.module = module
        encoder = get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE)  # as module_common encodes them
        self.params = json.dumps({"ANSIBLE_MODULE_ARGS": args}, cls=encoder).encode()
        self.environment = environment

    def execute(self):
        """Run it; returns what ``_low_level_execute_command`` returns for a module process."""
        stdout, stderr = io.StringIO(), io.StringIO()
        rc = 0
        with self._as_module(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                self._main()
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return dict(rc=rc, stdout=stdout.getvalue(), stderr=stderr.getvalue())

    def _main(self):
        try:
            self.module.main()
            raise RuntimeError("New-style module did not handle its own exit.")  # as AnsiballZ says
        except Exception as exc:  # pylint: disable=broad-exception-caught
            _loader._handle_exception(exc, PROFILE)  # what AnsiballZ reports for an unhandled error (exits)

    @contextlib.contextmanager
    def _as_module(self):
        """Module-side globals for the run: its arguments, fresh warnings, module (not controller) reporting.

        The worker runs this one task (or its loop items one after the other), so the process environment is
        the module's for the duration, as it would be in its own process; it is put back after each run.
        """
        saved = [(basic, "_ANSIBLE_ARGS"), (basic, "_ANSIBLE_PROFILE"), (module_internal, "is_controller")]
        saved += [(_traceback, "_is_traceback_enabled"), (_traceback, "_module_tracebacks_enabled_events")]
        saved_values = [getattr(owner, name) for owner, name in saved]
        saved_env = dict(os.environ)
        saved_locale = locale.setlocale(locale.LC_ALL)  # AnsibleModule sets the locale from the environment
        basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE = self.params, PROFILE
        # Warnings and deprecations go into the result (not straight to the display), as in a module process.
        module_internal.is_controller = False
        _traceback._is_traceback_enabled = _traceback._is_module_traceback_enabled
        _traceback._module_tracebacks_enabled_events = None
        module_warnings._global_warnings.clear()
        module_warnings._global_deprecations.clear()
        os.environ.update((key, str(value)) for key, value in self.environment.items())
        os.environ.setdefault(PYDANTIC_ENV, "__all__")
        try:
            yield
        finally:
            for (owner, name), value in zip(saved, saved_values, strict=True):
                setattr(owner, name, value)
            os.environ.clear()
            os.environ.update(saved_env)
            with contextlib.suppress(locale.Error):
                locale.setlocale(locale.LC_ALL, saved_locale)


class GpuCloudModuleAction(NormalAction):
    """Action of every gpucloud module: in the worker when that is where the module would run, else as usual.

    Each ``plugins/action/<module>.py`` subclasses it and sets ``module_name``; defining the subclass preloads
    that module (in ``ansible-playbook``, where strategies load action classes).
    """

    module_name = ""
    _module = None
    _not_loaded = "no module_name"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.module_name and HAS_HOOKS:
            cls._module, cls._not_loaded = preload(cls.module_name)

    def run(self, tmp=None, task_vars=None):
        task_vars = {} if task_vars is None else task_vars
        environment = {}
        why = self.refusal(task_vars, environment)
        if why:
            display.vvv(f"{self._task.action}: module process ({why})", host=self._play_context.remote_addr)
            return super().run(tmp, task_vars)
        display.vvv(
            f"{self._task.action}: running in the controller's worker (pid {os.getpid()}), no module process",
            host=self._play_context.remote_addr,
        )
        return self._run_in_process(tmp, task_vars, environment)

    def refusal(self, task_vars, environment):
        """Why this task must take the module process, or "" when it may run here; fills ``environment`` with
        the task's templated ``environment:``."""
        checks = (
            (not HAS_HOOKS, "this ansible-core has no in-process hooks"),
            (self._module is None, self._not_loaded),
            (opted_out(os.environ.get(OPT_OUT_ENV, "")), f"{OPT_OUT_ENV} is false"),
            (opted_out(self._templar.template(task_vars.get(OPT_OUT_VAR, True))), f"{OPT_OUT_VAR} is false"),
            (getattr(self._connection, "transport", None) != "local", "the connection is not local"),
            (self._play_context.become or self._connection.become is not None, "become is set"),
            (bool(self._task.async_val), "the task is async"),
            (C.DEFAULT_KEEP_REMOTE_FILES, "keep_remote_files is set"),
        )
        for refused, reason in checks:
            if refused:
                return reason
        if not same_python(self._interpreter(task_vars)):
            return "the interpreter is not the controller's Python"
        self._compute_environment_string(environment)
        if any(key.startswith("PYTHON") for key in environment):
            return "the task environment sets PYTHON* variables"
        return ""

    def _interpreter(self, task_vars):
        """The Python the module process would start, as Ansible works it out; None when it would discover one."""
        use_vars = task_vars
        if self._task.delegate_to:
            use_vars = task_vars.get("ansible_delegated_vars", {}).get(self._task.delegate_to, task_vars)
        try:
            return _get_shebang("/usr/bin/python", use_vars, self._templar)[1]
        except (InterpreterDiscoveryRequiredError, AnsibleError):
            return None
        except Exception:  # pylint: disable=broad-exception-caught
            return None  # Ansible changed how it works this out: let it do so itself, in a module process

    def _run_in_process(self, tmp, task_vars, environment):
        result = super(NormalAction, self).run(tmp, task_vars)  # ActionBase's checks (check mode support ...)
        args = dict(self._task.args)
        self._update_module_args(self._task.action, args, task_vars)
        data = self._parse_returned_data(ModuleRun(self._module, args, environment).execute(), PROFILE)
        return merge_hash(result, self._clean(data))

    @staticmethod
    def _clean(data):
        """What ``ActionBase._execute_module`` does to a parsed module result before returning it."""
        data.pop("_ansible_suppress_tmpdir_delete", None)
        if "results" in data and (not isinstance(data["results"], Sequence) or isinstance(data["results"], str)):
            data["ansible_module_results"] = data.pop("results")
            display.warning("Found internal 'results' key in module return, renamed to 'ansible_module_results'.")
        remove_internal_keys(data)
        for key in ("stdout", "stderr"):
            if key in data and f"{key}_lines" not in data:
                data[f"{key}_lines"] = (data.get(key) or "").splitlines()
        return data
