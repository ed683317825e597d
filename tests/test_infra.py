"""Deployment templates (infra/, Bicep): they set the settings the code reads, declare the queues the contract
relies on, and grant nothing beyond the roles the function needs.

No Bicep compiler can run on this machine, so the templates are kept plain (one `key: value` per line, no
resource loops, no registry modules) and read here with small regular expressions. Each check returns the
problems it found; the tests assert there are none in the real tree, and that each check does report a
problem in a copy of the tree with one deliberate mistake in it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest

import shared.settings
from shared.settings import (
    DEFAULT_RETRY_DELAYS,
    PLATFORM_SETTING_NAMES,
    SETTING_NAMES,
    SettingsError,
    SuccessSampling,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[1]

# Read by the Functions host, not by the app's code; the template sets them.
HOST_SETTINGS = frozenset(
    {
        "ServiceBusConnection__credential",  # the trigger's identity-based connection: which credential
        "AzureWebJobsStorage__accountName",  # the host's storage, by identity (no shared key)
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # the host's telemetry is sent with the identity's token
        # The worker attaches the host's trace context to each invocation (OpenTelemetry, host.json
        # telemetryMode); the app's own exporter reads APPLICATIONINSIGHTS_CONNECTION_STRING (SETTING_NAMES).
        "PYTHON_ENABLE_OPENTELEMETRY",
    }
)
# Read by the code, never set in Azure.
LOCAL_ONLY_SETTINGS = {
    "ServiceBusConnection": "a connection string: the namespace has local auth off; Azure uses the identity",
    "BATCH_CREDENTIAL": "the developer's own login, refused where Azure hosts the app",
    "QUICK_RETRY_DELAYS": "a tuning knob outside the contract; Azure runs with the default",
}
# Only in local.settings.sample.json: what a laptop needs that Azure provides itself.
SAMPLE_ONLY_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME": "Core Tools needs it; Flex Consumption reads functionAppConfig instead",
    "AzureWebJobsStorage": "the local host's storage; in Azure the identity-based AzureWebJobsStorage__*",
    "IDENTITY_ENDPOINT": "set by the platform in Azure; locally it points azure-identity at the emulator",
    "IDENTITY_HEADER": "set by the platform in Azure; locally the emulator's secret",
}

SERVICE_BUS_DATA_OWNER = "090c5cfd-751d-490a-894a-3ce6f1109419"
# Built-in roles the templates may grant, and the only resource types each may be scoped to.
# GUIDs checked against Microsoft's built-in roles reference (MicrosoftDocs/azure-docs,
# articles/role-based-access-control/built-in-roles, and articles/batch/batch-role-based-access-control.md).
ALLOWED_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": (
        "Azure Service Bus Data Receiver",
        frozenset({"Microsoft.ServiceBus/namespaces/queues"}),
    ),
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": (
        "Azure Service Bus Data Sender",
        frozenset({"Microsoft.ServiceBus/namespaces/queues"}),
    ),
    "48e5e92e-a480-4e71-aa9c-2778f4c13781": (
        "Azure Batch Job Submitter",
        frozenset({"Microsoft.Batch/batchAccounts"}),
    ),
    "3913510d-42f4-4e42-8a64-420c390055eb": (
        "Monitoring Metrics Publisher",
        frozenset({"Microsoft.Insights/components"}),
    ),
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": (
        "Storage Blob Data Owner",
        frozenset({"Microsoft.Storage/storageAccounts"}),
    ),
    # The host's diagnostic events go to tables in AzureWebJobsStorage (Microsoft's host storage role table,
    # MicrosoftDocs/azure-docs includes/functions-azurewebjobsstorage-permissions.md).
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": (
        "Storage Table Data Contributor",
        frozenset({"Microsoft.Storage/storageAccounts"}),
    ),
    # Manage rights, so that the scale controller can read the deletion queue's message count (target-based
    # scaling; docs/deployment.md, "Who may do what"). Only on the queue DELETION_QUEUE names: check_roles.
    SERVICE_BUS_DATA_OWNER: (
        "Azure Service Bus Data Owner",
        frozenset({"Microsoft.ServiceBus/namespaces/queues"}),
    ),
}
# Never: keys, connection strings, SAS rules, broad roles by name, custom role definitions.
FORBIDDEN = {
    r"\blist\w*\(": "a list*() call (listKeys, listConnectionStrings, listSecrets, ...) reads keys",
    r"SharedAccessKey|AccountKey=|AccessKey": "a shared key",
    r"authorizationRules": "a SAS authorization rule",
    r"'(Owner|Contributor|User Access Administrator)'": "a broad role by name",
    r"Microsoft\.Authorization/roleDefinitions@": "a custom role definition",
}
# The one connection string allowed: Application Insights' (an address and an id; ingestion needs a token).
ALLOWED_CONNECTION_STRING_LINE = (
    "APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString"
)

QUICK_RETRY_BUDGET = 30  # seconds a message is held for quick retries (contract section 3)
MAX_LOCK_DURATION = 300  # Service Bus' limit
MAX_DUPLICATE_WINDOW = 7 * 86400  # Service Bus' limit

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_DECLARATION = re.compile(
    r"^(resource|module)\s+(\w+)\s+'([^'@]+)(?:@[^']*)?'\s+(existing\s+)?=\s*(\[for\s[^:]+:\s*)?"
    r"(?:if\s*\((.*)\)\s*)?\{",
    re.M,
)
_PARAM = re.compile(r"^param\s+(\w+)\s+\w+(?:\s*=\s*(.+?))?\s*$", re.M)
_VAR = re.compile(r"^var\s+(\w+)\s*=\s*(.+?)\s*(?://.*)?$", re.M)
_OUTPUT = re.compile(r"^output\s+(\w+)\s+\w+\s*=\s*(.+?)\s*$", re.M)
_KEY = re.compile(r"^[ \t]*([A-Za-z_]\w*|'[^']*')[ \t]*:[ \t]*", re.M)
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def _mask(text: str, *, strings: bool = True) -> str:
    """`text` with // comments (and string contents, unless `strings` is false) blanked, same length,
    so that brackets can be counted and words found only where they are code."""
    out = list(text)
    i = 0
    while i < len(text):
        if text[i] == "'":
            i += 1
            while i < len(text) and text[i] != "'":
                step = 2 if text[i] == "\\" else 1
                if strings:
                    out[i : i + step] = " " * len(out[i : i + step])
                i += step
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        i += 1
    return "".join(out)


def _closing(mask: str, start: int) -> int:
    """Index of the bracket closing the one at `start`."""
    depth = 0
    for i in range(start, len(mask)):
        if mask[i] in "{[(":
            depth += 1
        elif mask[i] in "}])":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced bracket at {start}")


def parse_fields(body: str) -> dict[str, str]:
    """The top-level `key: value` pairs of an object body; a value spanning lines is its whole text."""
    mask = _mask(body)
    depth = [0] * (len(mask) + 1)
    for i, char in enumerate(mask):
        depth[i + 1] = depth[i] + (char in "{[(") - (char in "}])")
    result: dict[str, str] = {}
    for match in _KEY.finditer(mask):
        if depth[match.start()] != 0:
            continue
        key = body[match.start(1) : match.end(1)].strip("'")
        end = match.end()
        while end < len(mask) and not (mask[end] == "\n" and depth[end] == 0):
            end += 1
        result[key] = body[match.end() : end].strip()
    return result


@dataclass(frozen=True)
class Declaration:
    kind: str  # "resource" or "module"
    symbol: str
    target: str  # a resource type without its api-version, or a module's path
    existing: bool
    condition: str | None
    body: str

    @property
    def fields(self) -> dict[str, str]:
        return parse_fields(self.body)

    def block(self, key: str) -> dict[str, str]:
        """The fields of the object under `key` (`properties`, `params`, `sku`, ...)."""
        return parse_fields(self.fields.get(key, "{}").strip()[1:-1])

    @property
    def properties(self) -> dict[str, str]:
        return self.block("properties")


@dataclass(frozen=True)
class Template:
    path: Path
    text: str

    @cached_property
    def declarations(self) -> dict[str, Declaration]:
        mask = _mask(self.text)
        found: dict[str, Declaration] = {}
        for match in _DECLARATION.finditer(self.text):
            opening = match.end() - 1
            body = self.text[opening + 1 : _closing(mask, opening)]
            kind, symbol, target, existing, _, condition = match.groups()
            found[symbol] = Declaration(kind, symbol, target, bool(existing), condition, body)
        return found

    @cached_property
    def params(self) -> dict[str, str | None]:
        return {m.group(1): m.group(2) for m in _PARAM.finditer(self.text)}

    @cached_property
    def variables(self) -> dict[str, str]:
        return {m.group(1): m.group(2) for m in _VAR.finditer(self.text)}

    @cached_property
    def outputs(self) -> dict[str, str]:
        return {m.group(1): m.group(2) for m in _OUTPUT.finditer(self.text)}

    def of_type(self, resource_type: str) -> Iterator[Declaration]:
        return (d for d in self.declarations.values() if d.kind == "resource" and d.target == resource_type)


class Unresolved(str):
    """An expression only known at deployment (a resource property, a module output, ...)."""


class Infra:
    """The templates under `root`/infra, and enough evaluation to follow values between them."""

    def __init__(self, root: Path) -> None:
        self.root = (root / "infra").resolve()
        self.templates = {
            path.relative_to(self.root).as_posix(): Template(path, path.read_text(encoding="utf-8"))
            for path in sorted(self.root.rglob("*.bicep"))
        }
        self.main = self.templates["main.bicep"]
        parameters = json.loads((self.root / "main.parameters.json").read_text(encoding="utf-8"))
        self.parameters: dict[str, object] = {
            name: entry.get("value") for name, entry in parameters["parameters"].items()
        }

    def caller(self, template: Template) -> Declaration | None:
        """The module declaration in main.bicep that deploys `template`."""
        for declaration in self.main.declarations.values():
            if declaration.kind == "module" and self.templates.get(declaration.target) is template:
                return declaration
        return None

    def resolve(self, template: Template, expression: str) -> object:
        """The value of `expression` in `template`: a literal, or `Unresolved` if only a deployment knows it.
        Follows variables, parameters (defaults, the caller's arguments, main.parameters.json),
        module outputs and resource names."""
        text = expression.strip()
        literal = re.fullmatch(r"'([^'$]*)'|(-?\d+)|(true|false)", text)
        if literal is not None:
            string, number, boolean = literal.groups()
            return string if string is not None else int(number) if number is not None else boolean == "true"
        if text in template.variables:
            return self.resolve(template, template.variables[text])
        if text in template.params:
            return self._parameter(template, text)
        return self._reference(template, text)

    def _reference(self, template: Template, text: str) -> object:
        """`symbol.name` of a resource, or `module.outputs.name` of a module."""
        reference = re.fullmatch(r"(\w+)\.(?:outputs\.(\w+)|name)", text)
        declaration = template.declarations.get(reference.group(1)) if reference else None
        if reference is None or declaration is None:
            return Unresolved(text)
        output = reference.group(2)
        if output is None:
            return self.resolve(template, declaration.fields.get("name", "?"))
        module = self.templates.get(declaration.target)
        if declaration.kind == "module" and module is not None and output in module.outputs:
            return self.resolve(module, module.outputs[output])
        return Unresolved(text)

    def _parameter(self, template: Template, name: str) -> object:
        if template is self.main and name in self.parameters:
            value = self.parameters[name]
            given = re.fullmatch(r"\$\{\w+(?:=(.*))?\}", value) if isinstance(value, str) else None
            if given is None:
                return value
            return Unresolved(str(value)) if given.group(1) is None else given.group(1)
        caller = self.caller(template)
        if caller is not None and name in caller.block("params"):
            return self.resolve(self.main, caller.block("params")[name])
        default = template.params[name]
        return Unresolved(name) if default is None else self.resolve(template, default)

    def app_settings(self) -> tuple[Template, dict[str, str]]:
        """The function app's settings: the one `Microsoft.Web/sites/config` named appsettings."""
        found = [
            (template, declaration)
            for template in self.templates.values()
            for declaration in template.of_type("Microsoft.Web/sites/config")
            if declaration.fields.get("name") == "'appsettings'"
        ]
        assert len(found) == 1, f"expected one appsettings resource, found {len(found)}"
        template, declaration = found[0]
        return template, declaration.properties

    def queue_for_setting(self, setting: str) -> tuple[Template, Declaration] | None:
        """The queue resource an app setting names: app setting <- module argument <- module output."""
        template, settings = self.app_settings()
        caller = self.caller(template)
        if caller is None or setting not in settings:
            return None
        given = caller.block("params").get(settings[setting].strip(), "")
        output = re.fullmatch(r"(\w+)\.outputs\.(\w+)", given)
        source = self.main.declarations.get(output.group(1)) if output else None
        module = self.templates.get(source.target) if source else None
        if output is None or module is None:
            return None
        queue = re.fullmatch(r"(\w+)\.name", module.outputs.get(output.group(2), ""))
        declaration = module.declarations.get(queue.group(1)) if queue else None
        if declaration is None or declaration.target != "Microsoft.ServiceBus/namespaces/queues":
            return None
        return module, declaration


def seconds(duration: object) -> float:
    """Seconds in an ISO 8601 duration such as PT1M or P1D."""
    match = _DURATION.fullmatch(str(duration))
    if match is None or str(duration) in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {duration!r}")
    days, hours, minutes, secs = (float(group or 0) for group in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + secs


# The checks: each returns the problems it finds in the tree at `root`.


def check_settings(root: Path) -> list[str]:
    """The template's and the sample's settings are the ones the code reads, modulo the lists above."""
    problems = []
    _, settings = Infra(root).app_settings()
    expected = (set(SETTING_NAMES) - set(LOCAL_ONLY_SETTINGS)) | HOST_SETTINGS
    for name in sorted(expected - set(settings)):
        problems.append(f"the template does not set {name}")
    for name in sorted(set(settings) - expected):
        problems.append(f"the template sets {name}, which neither the code nor the host reads")
    sample = json.loads((root / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    expected_sample = set(SETTING_NAMES) | set(SAMPLE_ONLY_SETTINGS)
    for name in sorted(expected_sample - set(sample)):
        problems.append(f"local.settings.sample.json does not list {name}")
    for name in sorted(set(sample) - expected_sample):
        problems.append(f"local.settings.sample.json lists {name}, which the code does not read")
    return problems


Queue = tuple[Template, Declaration]


def check_queues(root: Path) -> list[str]:
    """The queues the code uses exist with the properties the contract relies on."""
    infra = Infra(root)
    deletion = infra.queue_for_setting("DELETION_QUEUE")
    failure = infra.queue_for_setting("DEAD_LETTER_QUEUE")
    if deletion is None or failure is None:
        return ["DELETION_QUEUE and DEAD_LETTER_QUEUE must each name a queue the templates declare"]
    if deletion[1].symbol == failure[1].symbol:
        return ["DELETION_QUEUE and DEAD_LETTER_QUEUE name the same queue"]
    return [
        *_lock_and_deliveries(infra, deletion, failure),
        *_forwarding(deletion, failure),
        *_duplicate_detection(infra, failure),
        *_deletion_duplicate_detection(infra, deletion),
        *_namespace_tier(deletion),
    ]


def _lock_and_deliveries(infra: Infra, deletion: Queue, failure: Queue) -> Iterator[str]:
    for label, (template, queue) in (("deletion", deletion), ("failure", failure)):
        lock = seconds(infra.resolve(template, queue.properties.get("lockDuration", "'PT1M'")))
        if not QUICK_RETRY_BUDGET < lock <= MAX_LOCK_DURATION:
            yield f"{label} queue lockDuration is {lock:g} s; it must exceed {QUICK_RETRY_BUDGET} s"
    template, queue = deletion
    max_deliveries = infra.resolve(template, queue.properties.get("maxDeliveryCount", "10"))
    if not isinstance(max_deliveries, int) or max_deliveries < 3:
        yield f"deletion queue maxDeliveryCount {max_deliveries!r}: a restart or two must not dead-letter"


def _forwarding(deletion: Queue, failure: Queue) -> Iterator[str]:
    if deletion[1].properties.get("forwardDeadLetteredMessagesTo") != f"{failure[1].symbol}.name":
        yield "the deletion queue does not forward its dead letters to the failure queue"
    if "forwardDeadLetteredMessagesTo" in failure[1].properties:
        yield "the failure queue forwards its dead letters: records could loop or vanish"


def _duplicate_detection(infra: Infra, failure: Queue) -> Iterator[str]:
    template, queue = failure
    if infra.resolve(template, queue.properties.get("requiresDuplicateDetection", "false")) is not True:
        yield "the failure queue has no duplicate detection: one request could leave two records"
        return
    window = seconds(infra.resolve(template, queue.properties["duplicateDetectionHistoryTimeWindow"]))
    app_template, settings = infra.app_settings()
    deployed = str(infra.resolve(app_template, settings.get("RETRY_DELAYS", "''")))
    try:
        delays = load_settings(_minimal_env(RETRY_DELAYS=deployed)).retry_delays
    except SettingsError as exc:
        yield f"the template's RETRY_DELAYS ({deployed}) is not valid: {exc}"
        return
    longest = max(*DEFAULT_RETRY_DELAYS, *delays)
    if not longest < window <= MAX_DUPLICATE_WINDOW:
        yield (
            f"the failure queue's duplicate detection window is {window:g} s;"
            f" it must exceed the longest retry delay ({longest} s) and be at most 7 days"
        )


def _deletion_duplicate_detection(infra: Infra, deletion: Queue) -> Iterator[str]:
    """A retry copy sent twice (its message came back after the copy was sent) must be dropped: the window
    must outlast the lock, after which such a message comes back."""
    template, queue = deletion
    if infra.resolve(template, queue.properties.get("requiresDuplicateDetection", "false")) is not True:
        yield "the deletion queue has no duplicate detection: a retry copy sent twice is processed twice"
        return
    window = seconds(infra.resolve(template, queue.properties["duplicateDetectionHistoryTimeWindow"]))
    lock = seconds(infra.resolve(template, queue.properties.get("lockDuration", "'PT1M'")))
    if not lock < window <= MAX_DUPLICATE_WINDOW:
        yield (
            f"the deletion queue's duplicate detection window is {window:g} s;"
            f" it must exceed its lock ({lock:g} s)"
        )


def _namespace_tier(deletion: Queue) -> Iterator[str]:
    template, queue = deletion
    namespace = template.declarations.get(queue.fields.get("parent", ""))
    if namespace is None or namespace.block("sku").get("name") not in ("'Standard'", "'Premium'"):
        yield "the namespace must be Standard or Premium (duplicate detection)"


def check_roles(root: Path) -> list[str]:
    """Every role assignment grants an allowed role on an allowed kind of resource, nothing broader; Data
    Owner only on the deletion queue."""
    infra = Infra(root)
    problems = []
    deletion = infra.queue_for_setting("DELETION_QUEUE")
    for name, template in infra.templates.items():
        for guid in sorted({g.lower() for g in _GUID.findall(template.text)} - set(ALLOWED_ROLES)):
            problems.append(f"{name}: {guid} is not an allowed role")
        for assignment in template.of_type("Microsoft.Authorization/roleAssignments"):
            where = f"{name}: {assignment.symbol}"
            definition = assignment.properties.get("roleDefinitionId", "")
            match = re.fullmatch(
                r"subscriptionResourceId\('Microsoft\.Authorization/roleDefinitions',\s*(.+)\)", definition
            )
            role = (
                str(template.variables.get(match.group(1), match.group(1)) if match else "")
                .strip("'")
                .lower()
            )
            if role not in ALLOWED_ROLES:
                problems.append(
                    f"{where} grants {definition or 'no role'}, not a built-in role from the allow-list"
                )
                continue
            role_name, scope_types = ALLOWED_ROLES[role]
            scope = template.declarations.get(assignment.fields.get("scope", ""))
            if role == SERVICE_BUS_DATA_OWNER and (
                deletion is None or scope is None or scope.symbol != deletion[1].symbol
            ):
                problems.append(f"{where} grants {role_name} beyond the deletion queue")
                continue
            if scope is None or scope.target not in scope_types:
                problems.append(
                    f"{where} grants {role_name} on {assignment.fields.get('scope', 'the deployment scope')};"
                    f" allowed only on {', '.join(sorted(scope_types))}"
                )
    return problems


def check_no_secrets(root: Path) -> list[str]:
    """No keys, connection strings or SAS rules anywhere; local (key) auth off wherever it can be."""
    infra = Infra(root)
    problems = []
    for name, template in infra.templates.items():
        code = _mask(template.text, strings=False)  # comments may say anything; code and strings may not
        for number, line in enumerate(code.splitlines(), start=1):
            for pattern, why in FORBIDDEN.items():
                if re.search(pattern, line, re.IGNORECASE):
                    problems.append(f"{name}:{number}: {why}")
            if (
                re.search(r"connection_?string", line, re.I)
                and line.strip() != ALLOWED_CONNECTION_STRING_LINE
            ):
                problems.append(f"{name}:{number}: a connection string")
    expectations = [
        ("Microsoft.Storage/storageAccounts", "allowSharedKeyAccess", False),
        ("Microsoft.ServiceBus/namespaces", "disableLocalAuth", True),
        ("Microsoft.Insights/components", "DisableLocalAuth", True),
    ]
    for resource_type, key, wanted in expectations:
        declared = [
            (template, declaration)
            for template in infra.templates.values()
            for declaration in template.of_type(resource_type)
            if not declaration.existing
        ]
        if not declared:
            problems.append(f"no {resource_type} is declared")
        for template, declaration in declared:
            value = infra.resolve(template, declaration.properties.get(key, "null"))
            if value is not wanted:
                problems.append(f"{declaration.symbol}: {key} must be {str(wanted).lower()}, not {value}")
    return problems


# What an operator must be told (issue 15; docs/operating-in-azure.md): each Service Bus metric alert
# watches the queue main.bicep passes it, by the serviceBus module's output.
QUEUE_ALERTS = {"deadLetterQueueName": "the failure queue", "deletionQueueName": "the deletion queue"}
WORKBOOK_PARTS = {
    "Outcomes over time": "outcomes over time",
    # every message is counted by the counter; successes' records and spans may be sampled (issue 15)
    'customMetrics | where name == "deletion.outcomes"': "outcomes from the counter",
    "percentilesw(duration, itemCount": "Batch latency percentiles weighed by itemCount",
    "Failure reasons": "failure reasons",
    "Top failing jobs": "the top failing jobs",
}


def check_alerts(root: Path) -> list[str]:
    """Alerts on the failure queue, the deletion backlog and given-up deletions; the workbook; an
    optional action group (an e-mail parameter) that every alert notifies."""
    infra = Infra(root)
    problems = []
    found = [
        (template, declaration)
        for template in infra.templates.values()
        for declaration in template.declarations.values()
        if declaration.kind == "resource" and not declaration.existing
    ]

    def of_type(resource_type: str) -> list[tuple[Template, Declaration]]:
        return [(t, d) for t, d in found if d.target == resource_type]

    for param, queue in QUEUE_ALERTS.items():
        watching = [
            (t, d)
            for t, d in of_type("Microsoft.Insights/metricAlerts")
            if "metricName: 'ActiveMessages'" in d.body and re.search(rf"values: \[\s*{param}\s*\]", d.body)
        ]
        caller = infra.caller(watching[0][0]) if watching else None
        if caller is None or caller.block("params").get(param) != f"serviceBus.outputs.{param}":
            problems.append(f"no ActiveMessages alert on {queue} ({param} from the serviceBus module)")
    given_up = [
        d
        for _, d in of_type("Microsoft.Insights/scheduledQueryRules")
        if re.search(r"query: '[^\n]*RetriesExhausted[^\n]*DeletionStuck", d.body)
        and "applicationInsights.id" in d.body
    ]
    if not given_up:
        problems.append("no log alert on RetriesExhausted and DeletionStuck records in Application Insights")
    workbooks = of_type("Microsoft.Insights/workbooks")
    for fragment, part in WORKBOOK_PARTS.items():
        if not any(fragment in template.text for template, _ in workbooks):
            problems.append(f"no workbook shows {part}")
    groups = of_type("Microsoft.Insights/actionGroups")
    if len(groups) != 1 or groups[0][1].condition is None or "emailReceivers" not in groups[0][1].body:
        problems.append("no optional action group (created only when an e-mail address is given)")
    elif infra.main.params.get("alertEmail") != "''":
        problems.append("main.bicep has no optional alertEmail parameter (default empty)")
    else:
        template, group = groups[0]
        alerts = [
            d
            for d in template.declarations.values()
            if d.target in ("Microsoft.Insights/metricAlerts", "Microsoft.Insights/scheduledQueryRules")
        ]
        for alert in alerts:
            actions = alert.properties.get("actions", "")
            if f"{group.symbol}.id" not in template.variables.get(actions, actions):
                problems.append(f"{alert.symbol} does not notify the action group")
    return problems


def _minimal_env(**changes: str) -> dict[str, str]:
    return {
        "BATCH_ENDPOINT": "https://acct.westeurope.batch.azure.com",
        "DELETION_QUEUE": "deletions",
        "DEAD_LETTER_QUEUE": "deletions-failed",
        "ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
        **changes,
    }


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "settings": check_settings,
    "queues": check_queues,
    "roles": check_roles,
    "secrets": check_no_secrets,
    "alerts": check_alerts,
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_templates_pass(check: str) -> None:
    """The deployment templates in the tree pass every check."""
    assert CHECKS[check](ROOT) == []


class _Recording(Mapping[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def test_setting_names_are_exactly_what_load_settings_reads() -> None:
    """SETTING_NAMES, which the template check relies on, lists every setting the code reads and no other."""
    read: set[str] = set()
    for values in (
        _minimal_env(),  # identity: reads the namespace, and both client id settings
        _minimal_env(
            ServiceBusConnection="Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v",
            BATCH_CREDENTIAL="developer",
        ),
    ):
        env = _Recording(values)
        load_settings(env)
        read |= env.read
    assert read == set(SETTING_NAMES) | set(PLATFORM_SETTING_NAMES)
    assert set(LOCAL_ONLY_SETTINGS) <= set(SETTING_NAMES)
    assert not HOST_SETTINGS & set(SETTING_NAMES)


def test_reading_an_undeclared_setting_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting the code reads but SETTING_NAMES leaves out stops load_settings, naming it: the lists
    the templates are checked against cannot silently fall behind the code."""
    undeclared = frozenset(SETTING_NAMES + PLATFORM_SETTING_NAMES) - {"RETRY_DELAYS"}
    monkeypatch.setattr(shared.settings, "_READABLE", undeclared)
    with pytest.raises(RuntimeError, match="'RETRY_DELAYS', which SETTING_NAMES does not declare"):
        load_settings(_minimal_env())


def test_app_settings_as_deployed_load() -> None:
    """The values the template gives (with stand-ins for what only a deployment knows) pass load_settings."""
    infra = Infra(ROOT)
    template, settings = infra.app_settings()
    stand_ins = {
        "BATCH_ENDPOINT": "https://acct.westeurope.batch.azure.com",
        "BATCH_ACCOUNTS": '{"acct": "https://acct.westeurope.batch.azure.com"}',
        "ServiceBusConnection__fullyQualifiedNamespace": "sb-deleter-x.servicebus.windows.net",
        "ServiceBusConnection__clientId": "00000000-0000-0000-0000-000000000001",
        "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
    }
    env = {}
    for name, expression in settings.items():
        value = infra.resolve(template, expression)
        env[name] = stand_ins.get(name, value) if isinstance(value, Unresolved) else str(value)
    loaded = load_settings(env)
    assert loaded.deletion_queue == "batch-job-deletions"
    assert loaded.dead_letter_queue == "batch-job-deletions-failed"
    assert loaded.retry_delays == DEFAULT_RETRY_DELAYS
    assert loaded.service_bus.uses_identity
    # Successes are sampled at about 5 per second and instance; failures never (shared/telemetry.py).
    assert loaded.success_sampling == SuccessSampling("microsoft.rate_limited", 5.0)


def test_azd_deploys_this_folder_to_the_python_311_flex_app() -> None:
    """azure.yaml's one service is the app the template tags for azd, a Python 3.11 Flex Consumption app."""
    azure_yaml = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    services = re.search(r"^services:\n((?:[ \t]+.*\n?)+)", azure_yaml, re.M)
    assert services is not None
    names = re.findall(r"^  (\w[\w-]*):\s*$", services.group(1), re.M)
    assert len(names) == 1
    assert re.search(r"^    project: \.\s*$", services.group(1), re.M)
    assert re.search(r"^    host: function\s*$", services.group(1), re.M)
    assert re.search(r"^infra:\n  provider: bicep\n  path: infra\s*$", azure_yaml, re.M)
    infra = Infra(ROOT)
    app = infra.templates["app/function-app.bicep"]
    (site,) = app.of_type("Microsoft.Web/sites")
    assert "'azd-service-name': serviceName" in site.fields["tags"]
    assert infra.resolve(app, "serviceName") == names[0]
    runtime = parse_fields(
        parse_fields(site.properties["functionAppConfig"].strip()[1:-1])["runtime"].strip()[1:-1]
    )
    assert runtime == {"name": "'python'", "version": "'3.11'"}
    (plan,) = app.of_type("Microsoft.Web/serverfarms")
    assert plan.block("sku") == {"tier": "'FlexConsumption'", "name": "'FC1'"}


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "infra", tmp_path / "infra")
    shutil.copy(ROOT / "local.settings.sample.json", tmp_path / "local.settings.sample.json")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path.name}: update this test's mistakes"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


MISTAKES = [
    # (check, file, old, new, expected fragment of a problem)
    (
        "alerts",
        "infra/app/alerts.bicep",
        "              values: [\n                deadLetterQueueName\n",
        "              values: [\n                deletionQueueName\n",
        "no ActiveMessages alert on the failure queue",
    ),
    (
        "alerts",
        "infra/app/alerts.bicep",
        'where outcome in ("RetriesExhausted", "DeletionStuck")',
        'where outcome in ("RetriesExhausted")',
        "no log alert on RetriesExhausted and DeletionStuck",
    ),
    (
        "alerts",
        "infra/app/alerts.bicep",
        "Top failing jobs",
        "Jobs",
        "no workbook shows the top failing jobs",
    ),
    (
        "alerts",
        "infra/app/alerts.bicep",
        "= if (withEmail) {",
        "= {",
        "no optional action group",
    ),
    (
        "alerts",
        "infra/app/alerts.bicep",
        "    actions: metricActions\n  }\n}\n\n// Requests",
        "    actions: []\n  }\n}\n\n// Requests",
        "failureQueueAlert does not notify the action group",
    ),
    (
        "settings",
        "infra/app/function-app.bicep",
        "    RETRY_DELAYS: retryDelays\n",
        "",
        "does not set RETRY_DELAYS",
    ),
    (
        "settings",
        "infra/app/function-app.bicep",
        "    RETRY_DELAYS: retryDelays\n",
        "    RETRY_DELAYS: retryDelays\n    RETRY_DELAY: '60'\n",
        "sets RETRY_DELAY, which neither",
    ),
    (
        "settings",
        "local.settings.sample.json",
        '    "QUICK_RETRY_DELAYS": "0.5,1,2",\n',
        "",
        "does not list QUICK_RETRY_DELAYS",
    ),
    ("queues", "infra/main.bicep", "= 'P1D'", "= 'PT1H'", "duplicate detection window is 3600 s"),
    (
        "queues",
        "infra/main.bicep",
        "= 'PT10M'",
        "= 'PT30S'",
        "deletion queue's duplicate detection window is 30 s",
    ),
    (
        "queues",
        "infra/app/servicebus.bicep",
        "    requiresDuplicateDetection: true\n"
        "    duplicateDetectionHistoryTimeWindow: deletionQueueDuplicateWindow",
        "",
        "the deletion queue has no duplicate detection",
    ),
    (
        "roles",
        "infra/app/servicebus.bicep",
        "  name: guid(deletionQueue.id, appPrincipalId, serviceBusDataOwner)\n  scope: deletionQueue\n",
        "  name: guid(deletionQueue.id, appPrincipalId, serviceBusDataOwner)\n  scope: failureQueue\n",
        "appScalesOnDeletions grants Azure Service Bus Data Owner beyond the deletion queue",
    ),
    (
        "queues",
        "infra/app/servicebus.bicep",
        "requiresDuplicateDetection: true",
        "requiresDuplicateDetection: false",
        "no duplicate detection",
    ),
    (
        "queues",
        "infra/app/servicebus.bicep",
        "    forwardDeadLetteredMessagesTo: failureQueue.name\n",
        "",
        "does not forward its dead letters",
    ),
    (
        "queues",
        "infra/app/servicebus.bicep",
        "maxDeliveryCount: 10\n",
        "maxDeliveryCount: 1\n",
        "maxDeliveryCount 1",
    ),
    (
        "queues",
        "infra/app/servicebus.bicep",
        "lockDuration: 'PT1M'\n    maxDeliveryCount: 10",
        "lockDuration: 'PT10S'\n    maxDeliveryCount: 10",
        "lockDuration is 10 s",
    ),
    ("queues", "infra/app/servicebus.bicep", "name: 'Standard'", "name: 'Basic'", "Standard or Premium"),
    (
        "roles",
        "infra/app/servicebus.bicep",
        "'4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'",
        "'8e3af657-a8ff-443c-a75c-2fe8c4bcb635'",  # Owner
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635 is not an allowed role",
    ),
    (
        "roles",
        "infra/app/servicebus.bicep",
        "  scope: deletionQueue\n",
        "  scope: serviceBusNamespace\n",
        "on serviceBusNamespace; allowed only on Microsoft.ServiceBus/namespaces/queues",
    ),
    ("roles", "infra/app/batch-access.bicep", "  scope: account\n", "", "on the deployment scope"),
    (
        "secrets",
        "infra/app/storage.bicep",
        "output name string = storage.name",
        "output key string = storage.listKeys().keys[0].value",
        "list*() call",
    ),
    (
        "secrets",
        "infra/app/function-app.bicep",
        "    RETRY_DELAYS: retryDelays\n",
        "    RETRY_DELAYS: retryDelays\n    AzureWebJobsStorage: 'AccountName=x;AccountKey=x'\n",
        "a shared key",
    ),
    (
        "secrets",
        "infra/app/storage.bicep",
        "allowSharedKeyAccess: false",
        "allowSharedKeyAccess: true",
        "allowSharedKeyAccess must be false",
    ),
    (
        "secrets",
        "infra/app/servicebus.bicep",
        "disableLocalAuth: true",
        "disableLocalAuth: false",
        "disableLocalAuth must be true",
    ),
    (
        "secrets",
        "infra/app/monitoring.bicep",
        "DisableLocalAuth: true",
        "DisableLocalAuth: false",
        "DisableLocalAuth must be true",
    ),
]


@pytest.mark.parametrize(("check", "file", "old", "new", "expected"), MISTAKES)
def test_checks_catch_mistakes(
    tmp_path: Path, check: str, file: str, old: str, new: str, expected: str
) -> None:
    """Each check reports a problem in a copy of the tree with one deliberate mistake."""
    root = _copy(tmp_path)
    _edit(root / file, old, new)
    problems = CHECKS[check](root)
    assert any(expected in problem for problem in problems), problems
