"""The identity map: which source columns name a person, and how they become one pseudonymous key.

Rules are a small declarative list of (source, column, namespace). A row's identity references are
its non-null identifiers as `namespace:id`; a source's rules are listed in order of strength (e.g.
Amplitude `user_id` before `device_id`). A row that carries two references links the weaker to the
stronger (a device seen with a user_id in Amplitude belongs to that user), and every row then
resolves its strongest reference through those links. `person_key` is a hash of the resolved
reference: stable across runs and sources, and not the identifier itself.

The default rules follow how the platform's sources share ids (and the sandbox world plants them):
Amplitude `user_id` == Optimizely `visitor_id` == tracking `anon_username` (namespace `user`);
Amplitude `device_id` == Profile Store `DeviceId` (namespace `device`). Override them with
`EVENT_PLATFORM_IDENTITY_RULES="amplitude.user_id=user,amplitude.device_id=device,…"`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from event_platform import settings
from event_platform.sources import registry

RULES_SETTING = "EVENT_PLATFORM_IDENTITY_RULES"
PERSON_KEY_HEX_DIGITS = 32


@dataclass(frozen=True)
class IdentityRule:
    source: str
    column: str
    namespace: str


def default_rules() -> tuple[IdentityRule, ...]:
    """Each registered source's identity fields, strongest first within a source."""
    return tuple(
        IdentityRule(source.name, identifier.column, identifier.namespace)
        for source in registry.sources()
        for identifier in source.identity
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
    """The rules of EVENT_PLATFORM_IDENTITY_RULES, else every registered source's."""
    text = settings.Warehouse.read().identity_rules
    return parse_rules(text) if text else default_rules()


@dataclass(frozen=True)
class IdentityMap:
    rules: tuple[IdentityRule, ...] = field(default_factory=default_rules)

    def source_rules(self, source: str) -> tuple[IdentityRule, ...]:
        return tuple(rule for rule in self.rules if rule.source == source)

    def _reference(self, rule: IdentityRule, prefix: str) -> str:
        """`namespace:id` for a rule's column; NULL when the id is null or blank."""
        return f"('{rule.namespace}:' || nullif(trim(CAST({prefix}\"{rule.column}\" AS VARCHAR)), ''))"

    def reference_sql(self, source: str, table_alias: str = "") -> str:
        """A row's strongest identity reference (its first non-null rule), or NULL."""
        prefix = f"{table_alias}." if table_alias else ""
        references = [self._reference(rule, prefix) for rule in self.source_rules(source)]
        return f"coalesce({', '.join(references)})" if references else "CAST(NULL AS VARCHAR)"

    def link_pairs_sql(self, source: str, relation: str, time_column: str) -> list[str]:
        """SELECTs of (reference, person_reference, occurred_at): each weaker reference of a row paired
        with the strongest reference before it, when both are present and in different namespaces."""
        rules = self.source_rules(source)
        selects = []
        for position, rule in enumerate(rules[1:], start=1):
            stronger = [r for r in rules[:position] if r.namespace != rule.namespace]
            if not stronger:
                continue
            weaker = self._reference(rule, "")
            person = f"coalesce({', '.join(self._reference(r, '') for r in stronger)})"
            selects.append(
                f'SELECT {weaker} AS reference, {person} AS person_reference, "{time_column}" AS occurred_at '
                f"FROM {relation} WHERE {weaker} IS NOT NULL AND {person} IS NOT NULL"
            )
        return selects

    def links_sources(self) -> tuple[str, ...]:
        """Sources whose rows can link two references (they have rules in two namespaces or more)."""
        sources = dict.fromkeys(rule.source for rule in self.rules)
        return tuple(
            source for source in sources if len({rule.namespace for rule in self.source_rules(source)}) > 1
        )


def person_key_sql(reference_sql: str) -> str:
    """The pseudonymous key of a resolved reference: the leading hex digits of its SHA-256."""
    return f"left(sha256({reference_sql}), {PERSON_KEY_HEX_DIGITS})"
