# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Shared base of every gpucloud.cloud module: options, connection, state dispatch, result and error shaping.

Modules stay thin: they validate options, build a spec and call ``gpucloud.ensure``; every API call and
reconcile decision lives in the installed ``gpucloud`` package.
"""

from __future__ import annotations

import json
import os
import tempfile
import traceback
from typing import ClassVar

from ansible.module_utils.basic import AnsibleModule, _load_params, missing_required_lib

# pydantic looks for plugins in every installed distribution's entry points the first time it builds a
# validator: a scan of the whole site-packages on every task. A module process has no use for pydantic
# plugins; a user who sets the variable keeps their own value.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

GPUCLOUD_IMP_ERR = None
try:
    import gpucloud
    from gpucloud import ensure as gpucloud_ensure  # pylint: disable=unused-import
    from gpucloud import errors as gpucloud_errors
    from gpucloud import presentation as gpucloud_presentation

    HAS_GPUCLOUD = True
except ImportError:
    GPUCLOUD_IMP_ERR = traceback.format_exc()
    gpucloud = None
    gpucloud_errors = None
    gpucloud_ensure = None
    gpucloud_presentation = None
    HAS_GPUCLOUD = False

# Every provider gpucloud knows (gpucloud.registry.NAMES): Ansible reads choices from static text, so this is a
# copy that tests/unit/test_registry.py holds equal. A provider this gpucloud release has no adapter for fails
# with a clean "unsupported" error naming the implemented ones.
PROVIDERS = ["datacrunch", "voltagepark", "dcdncloud", "cloudnexus", "computestacks"]

# Ansible option -> gpucloud.connect() keyword.
CONNECTION_OPTIONS = {
    "api_url": "base_url",
    "api_token": "token",
    "client_id": "client_id",
    "client_secret": "client_secret",
    "api_username": "username",
    "api_password": "password",
    "ssh_user": "ssh_user",
    "ssh_port": "ssh_port",
    "request_timeout": "timeout",
    "max_retries": "max_retries",
}


def connection_argument_spec():
    return dict(
        provider=dict(type="str", required=True, choices=PROVIDERS),
        api_url=dict(type="str", aliases=["endpoint"]),
        api_token=dict(type="str", no_log=True),
        client_id=dict(type="str"),
        client_secret=dict(type="str", no_log=True),
        api_username=dict(type="str"),
        api_password=dict(type="str", no_log=True),
        ssh_user=dict(type="str"),
        ssh_port=dict(type="int"),
        request_timeout=dict(type="float"),
        max_retries=dict(type="int"),
    )


def public(resource):
    """A gpucloud model as a plain dict without the provider payload, or None."""
    return None if resource is None else gpucloud_presentation.public(resource)


def instance_result(instance):
    return {} if instance is None else gpucloud_presentation.public_instance(instance)


def plan_result(plan):
    if plan is None:
        return {}
    return {
        "action": str(plan.action),
        "updates": [
            {"field": c.field, "current": _plain(c.current), "desired": _plain(c.desired)} for c in plan.updates
        ],
        "replacements": [
            {"field": c.field, "current": _plain(c.current), "desired": _plain(c.desired)} for c in plan.replacements
        ],
    }


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return dict((k, _plain(v)) for k, v in value.items())
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value
    return value


def write_secrets_file(path, by_name):
    """Merge ``by_name`` into the JSON file at ``path``, created (and kept) readable by its owner only."""
    existing = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            try:
                existing = json.load(handle)
            except ValueError:
                existing = {}
    if not isinstance(existing, dict):
        existing = {}
    existing.update((name, dict(secrets)) for name, secrets in by_name.items())
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".gpucloud-secrets-")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(existing, handle, indent=2, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def refuse_booleans_as_numbers(module):
    """Ansible passes ``true`` through ``type=int`` unchanged, and Python counts it as 1: ``wait_timeout: true``
    would wait one second. ``type=float`` turns it into 1.0 before the module runs (``max_price: true`` would be
    $1/h), so float options are judged by the arguments as the task gave them (``_load_params``, which Ansible
    offers modules for this). A boolean where a number belongs is a mistake; say so naming the option."""
    given = None
    for option, spec in module.argument_spec.items():
        kind = spec.get("type")
        if kind == "int":
            value = module.params.get(option)
        elif kind == "float":
            given = _load_params() if given is None else given
            value = next((given[n] for n in (option, *(spec.get("aliases") or ())) if n in given), None)
        else:
            continue
        if isinstance(value, bool):
            module.fail_json(
                msg=f"{option}: must be a number, not a boolean ({value})", error_class="ValidationError", option=option
            )


class GpuCloudModule:
    """Base for the modules: ``STATES`` maps ``state`` to a method; results go under ``represent``."""

    represent = "resource"
    STATES: ClassVar[dict[str, str]] = {}

    def __init__(self, module):
        self.module = module
        self.cloud = None
        self.result = {"changed": False, self.represent: {}}

    @classmethod
    def define_module(cls, argument_spec, provider_required=True, **kwargs):
        spec = connection_argument_spec()
        spec["provider"]["required"] = provider_required
        spec.update(argument_spec)
        module = AnsibleModule(argument_spec=spec, **kwargs)
        if not HAS_GPUCLOUD:
            module.fail_json(msg=missing_required_lib("gpucloud (pip install gpucloud)"), exception=GPUCLOUD_IMP_ERR)
        refuse_booleans_as_numbers(module)
        return module

    # --- options ------------------------------------------------------------------------------------
    @property
    def params(self):
        return self.module.params

    @property
    def check_mode(self):
        return self.module.check_mode

    def option_error(self, option, message):
        self.module.fail_json(msg=f"{option}: {message}", error_class="ValidationError", option=option)

    def keep_secrets(self, by_name):
        """One-time secrets (name -> {secret: value}): masked like ``no_log`` values everywhere Ansible shows or
        stores the result, and written to ``secrets_file`` (mode 0600) when the task sets it. Returns the masked
        mapping for the result."""
        for secrets in by_name.values():
            self.module.no_log_values.update(v for v in secrets.values() if v)
        path = self.params.get("secrets_file")
        if path:
            write_secrets_file(path, by_name)
            self.result["secrets_file"] = path
        return dict((name, dict((k, "********") for k in secrets)) for name, secrets in by_name.items())

    def validate(self):
        """Checks that need no API call; override and call ``option_error``. Runs before connecting."""

    def connect(self):
        overrides = dict(
            (target, self.params[option])
            for option, target in CONNECTION_OPTIONS.items()
            if self.params.get(option) is not None
        )
        # A password in the API URL (https://user:pass@host), given as api_url or from the environment or a
        # config file, is masked like a no_log value: api_url itself is not no_log, and shows in the invocation.
        from gpucloud.config import url_secrets

        self.module.no_log_values.update(url_secrets(self.params.get("api_url") or ""))
        self.cloud = gpucloud.connect(self.params["provider"], **overrides)
        self.module.no_log_values.update(self.cloud.config.url_secrets())
        return self.cloud

    # --- running ------------------------------------------------------------------------------------
    def run(self):
        # A private key pasted into any option is masked like a no_log value in results and logs.
        for value in self.params.values():
            if isinstance(value, str) and "PRIVATE KEY-----" in value:
                self.module.no_log_values.add(value)
        self.validate()
        state = self.params.get("state") or "present"
        method = getattr(self, self.STATES[state])
        try:
            self.connect()
            try:
                method()
            finally:
                self.cloud.close()
        except gpucloud_errors.GpuCloudError as exc:
            self.fail(exc)
        self.module.exit_json(**self.result)

    def fail(self, exc):
        """fail_json with the error's own one-line text (gpucloud formats it) and its parts as keys."""
        details = exc.to_dict()
        details["provider"] = details.get("provider") or self.params.get("provider")
        field = getattr(exc, "field", None)
        option = None
        if field:
            details["option"] = OPTION_NAMES.get(field, field)
            # The core names its own setting (``timeout``); say which option of this task that is.
            if field in CONNECTION_OPTIONS.values():
                option = details["option"]
        details["msg"] = exc.describe(option, provider=details["provider"])
        self.module.fail_json(**details)

    def spec(self, model, **values):
        """Build a gpucloud spec model; pydantic errors become a failure naming the Ansible option."""
        try:
            return model(**values)
        except Exception as exc:  # pydantic.ValidationError, imported lazily with gpucloud
            if not hasattr(exc, "errors"):
                raise
            problems = []
            first = None
            for err in exc.errors(include_input=False):
                loc = ".".join(str(p) for p in err["loc"])
                option = OPTION_NAMES.get(loc.split(".", maxsplit=1)[0], loc)
                first = first or option
                problems.append("{}: {}".format(option, err["msg"]))
            self.option_error(first or "options", "; ".join(problems))
            return None

    def to_be_created(self, **fields):
        """What check mode shows for a resource it would create: no id yet, on this task's provider."""
        return dict(id=None, provider=self.cloud.name, **fields)

    def ensure_and_report(self, ensure, *args, shape=public, predicted=None, **options):
        """Run a ``gpucloud.ensure`` function on this task's connection, in its check mode, and record the outcome
        (see :meth:`set_outcome`): the tail every resource module's states share. ``predicted`` may be a function
        of the outcome, called after it (it may read the API, or need what was there before)."""
        outcome = ensure(self.cloud, *args, check_mode=self.check_mode, **options)
        self.set_outcome(outcome, shape=shape, predicted=predicted(outcome) if callable(predicted) else predicted)
        return outcome

    def set_outcome(self, outcome, shape=public, predicted=None):
        """Record an ensure.Outcome: changed, the resource, diff and plan.

        In check mode nothing changed on the provider, so ``after`` is predicted: ``predicted`` (a create's spec)
        or ``before`` with the plan's updates applied.
        """
        self.result["changed"] = outcome.changed
        before = shape(outcome.before) if outcome.before is not None else {}
        if outcome.after is not None and not (self.check_mode and outcome.changed):
            after = shape(outcome.after)
        elif self.check_mode and outcome.changed and str(outcome.action) == "update":
            after = dict(before)
            for change in outcome.plan.updates:
                after[change.field] = _plain(change.desired)
        elif self.check_mode and outcome.changed and not str(outcome.action).endswith("delete"):
            after = dict(predicted or {})
        else:
            after = {}
        # After a delete, the deleted resource is what there is to show.
        self.result[self.represent] = after or before
        self.result["action"] = str(outcome.action)
        self.result["plan"] = plan_result(outcome.plan)
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": after}
            if str(outcome.action) == "replace":  # a new resource, not an edit: say so where the diff is shown
                fields = ", ".join(outcome.plan.replace_fields)
                self.result["diff"]["before_header"] = f"{self.represent} (deleted: replaced)"
                after_header = f"{self.represent} (new: replace, {fields} cannot change in place)"
                self.result["diff"]["after_header"] = after_header


class AccountResource(GpuCloudModule):
    """Base of the modules for an account resource found by ``name`` or ``id`` (ssh_key, volume): states present
    and absent, which subclasses implement with :meth:`ensure_and_report`."""

    STATES: ClassVar[dict[str, str]] = {"present": "present", "absent": "absent"}

    @classmethod
    def run_module(cls, **options):
        """Run the module with ``options`` besides name, id and state."""
        states = dict(type="str", default="present", choices=list(cls.STATES))
        argument_spec = dict(name=dict(type="str"), id=dict(type="str"), state=states, **options)
        cls(cls.define_module(argument_spec, supports_check_mode=True)).run()


class ResourceInfo(GpuCloudModule):
    """Base of the ``*_info`` modules for account resources: every resource of ``kind`` on the provider, or the
    one with the ``name`` or ``id`` option. Subclasses set ``represent`` and ``kind`` (the adapter has
    ``get_<kind>``, ``find_<kind>`` and ``list_<kind>s``) and may override ``shape``."""

    kind = ""
    STATES: ClassVar[dict[str, str]] = {"present": "info"}

    @classmethod
    def run_module(cls):
        module = cls.define_module(dict(name=dict(type="str"), id=dict(type="str")), supports_check_mode=True)
        cls(module).run()

    def shape(self, resource):
        return public(resource)

    def info(self):
        cloud = self.cloud
        items = gpucloud_ensure.select(
            getattr(cloud, "get_" + self.kind),
            getattr(cloud, "find_" + self.kind),
            getattr(cloud, "list_" + self.kind + "s"),
            name=self.params["name"],
            resource_id=self.params["id"],
        )
        self.result[self.represent] = [self.shape(item) for item in items]


class CatalogueInfo(GpuCloudModule):
    """Base of the read-only catalogue modules (offers, images, locations): one provider with the connection
    options given, the ones in ``providers``, or by default every configured provider with ``capability``;
    asked concurrently. Subclasses set ``capability`` and define ``listing``, ``keep`` and ``shape``."""

    capability = ""  # a gpucloud.capabilities.Capability value

    @classmethod
    def catalogue_module(cls, argument_spec):
        spec = dict(providers=dict(type="list", elements="str"))
        spec.update(argument_spec)
        return cls.define_module(
            spec, provider_required=False, supports_check_mode=True, mutually_exclusive=[("provider", "providers")]
        )

    def validate(self):
        for name in self.params["providers"] or []:
            if name not in PROVIDERS:
                self.option_error(
                    "providers", "unknown provider {!r}; choose from {}".format(name, ", ".join(PROVIDERS))
                )

    def chosen(self):
        if self.params["provider"]:
            return [self.params["provider"]]
        if self.params["providers"]:
            return list(self.params["providers"])
        from gpucloud.capabilities import Capability
        from gpucloud.config import configured_providers
        from gpucloud.providers import implemented, provider_class

        # By default, every configured provider with this catalogue; asking one without it explicitly fails.
        wanted = Capability(self.capability)
        return [p for p in configured_providers() if p in implemented() and wanted in provider_class(p).capabilities]

    def fetch(self, name):
        cloud = self.connect() if name == self.params["provider"] else gpucloud.connect(name)
        try:
            return [(name, item) for item in self.listing(cloud)]
        finally:
            cloud.close()

    def listing(self, cloud):
        raise NotImplementedError

    def keep(self, item):
        """By default: the ``name`` option as a case-insensitive filter on id and name (images, locations)."""
        return contains(self.params.get("name"), item.id, item.name)

    def shape(self, provider, item):
        return catalogue_item(item)

    def order(self, rows):
        return sorted(rows, key=lambda row: (row[0], row[1].id))

    def run(self):
        from concurrent.futures import ThreadPoolExecutor

        self.validate()
        try:
            providers = self.chosen()
            with ThreadPoolExecutor(max_workers=8) as pool:
                found = [row for rows in pool.map(self.fetch, providers) for row in rows]
        except gpucloud_errors.GpuCloudError as exc:
            self.fail(exc)
        rows = self.order([(name, item) for name, item in found if self.keep(item)])
        items = [self.shape(name, item) for name, item in rows]
        self.module.exit_json(changed=False, providers=providers, **{self.represent: items})


def catalogue_item(item):
    """An image or location as the info modules return it (the same shape as ``gpucloud images --json``)."""
    from gpucloud.providers import catalogue_entry

    return catalogue_entry(item)


def contains(text, *values):
    from gpucloud.providers import mentions

    return mentions(text, *values)


# gpucloud spec field -> Ansible option name, for messages that name what the user typed.
OPTION_NAMES = {
    "size_gb": "size",
    "volume_type": "type",
    "startup_script": "startup_script",
    "base_url": "api_url",
    "token": "api_token",
    "username": "api_username",
    "password": "api_password",
    "timeout": "request_timeout",
    "config": "credentials",
}
