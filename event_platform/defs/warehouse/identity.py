"""The identity map: which source columns name a person, and how they become one pseudonymous key.

Rules are a small declarative list of (source, column, namespace). A row's identity references are
its non-null identifiers as `namespace:id`, strongest first: a source's rules are listed in order of
strength (e.g. Amplitude `user_id` before `device_id`). A row that carries two references links the
weaker to the stronger (a device seen with a user_id in Amplitude belongs to that user), and every row
then resolves its strongest reference through those links. `person_key` is a hash of the resolved
reference: stable across runs and sources, and not the identifier itself.

The default rules follow how the platform's sources share ids (and the sandbox world plants them):
Amplitude `user_id` == Optimizely `visitor_id` == tracking `anon_username` (namespace `user`);
Amplitude `device_id` == Profile Store `DeviceId` (namespace `device`). Override them with
`EVENT_PLATFORM_IDENTITY_RULES="amplitude.user_id=user,amplitude.device_id=device,…"`.
"""

from __future__ import annotations

from dataclasses import dataclass

from event_platform import settings

RULES_SETTING = "EVENT_PLATFORM_IDENTITY_RULES"
PERSON_KEY_HEX_DIGITS = 32


@dataclass(frozen=True)
class IdentityRule:
    source: str
    column: str
    namespace: str


DEFAULT_RULES: tuple[IdentityRule, ...] = (
    IdentityRule("amplitude", "user_id", "user"),
    IdentityRule("amplitude", "device_id", "device"),
    IdentityRule("optimizely", "visitor_id", "user"),
    IdentityRule("tracking", "anon_username", "user"),
    IdentityRule("profile_store", "device_id", "device"),
)


class IdentityRulesError(ValueError):
    """The identity rules setting cannot be read."""


def parse_rules(text: str) -> tuple[IdentityRule, ...]:
    """`source.column=namespace` entries separated by commas, strongest first within a source."""
    rules = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        target, _, namespace = entry.partition("=")
        source, _, column = target.strip().partition(".")
        if not (source and column and namespace.strip()):
            raise IdentityRulesError(
                f"{RULES_SETTING}: cannot read {entry!r}; write source.column=namespace, e.g. "
                "amplitude.device_id=device"
            )
        for name in (source, column, namespace.strip()):
            if not name.replace("_", "").isalnum():
                raise IdentityRulesError(f"{RULES_SETTING}: {name!r} is not a plain name in {entry!r}")
        rules.append(IdentityRule(source.strip(), column.strip(), namespace.strip()))
    if not rules:
        raise IdentityRulesError(f"{RULES_SETTING} is set but names no rule")
    return tuple(rules)


def configured_rules() -> tuple[IdentityRule, ...]:
    text = settings.setting(RULES_SETTING)
    return parse_rules(text) if text else DEFAULT_RULES


@dataclass(frozen=True)
class IdentityMap:
    rules: tuple[IdentityRule, ...] = DEFAULT_RULES

    def source_rules(self, source: str) -> tuple[IdentityRule, ...]:
        return tuple(rule for rule in self.rules if rule.source == source)

    def references_sql(self, source: str, table_alias: str = "") -> str:
        """A DuckDB list expression of a row's identity references, strongest first, nulls and '' dropped."""
        prefix = f"{table_alias}." if table_alias else ""
        items = [
            f"'{rule.namespace}:' || nullif(trim(CAST({prefix}\"{rule.column}\" AS VARCHAR)), '')"
            for rule in self.source_rules(source)
        ]
        if not items:
            return "CAST([] AS VARCHAR[])"
        return f"list_filter([{', '.join(items)}], lambda reference: reference IS NOT NULL)"

    def links_sources(self) -> tuple[str, ...]:
        """Sources whose rows can link two references (they have rules in two namespaces or more)."""
        sources = dict.fromkeys(rule.source for rule in self.rules)
        return tuple(
            source for source in sources if len({rule.namespace for rule in self.source_rules(source)}) > 1
        )


def person_key_sql(reference_sql: str) -> str:
    """The pseudonymous key of a resolved reference: the leading hex digits of its SHA-256."""
    return f"left(sha256({reference_sql}), {PERSON_KEY_HEX_DIGITS})"
