"""A deterministic world of people, experiments and courses that every sandbox emulator draws from.

One seed gives one world, and `World.rng(...)` gives each (source, day, ...) its own random stream,
so a date always yields the same events whichever emulator asks first and however often.

The same person shows up in every source under the identifiers a real integration would share:
- `user_id`: the platform's account id, sent as Amplitude `user_id`, as the Optimizely `visitor_id`
  and as the learning platform's `anon_username` (an anonymous id, never a name);
- `device_id`: the browser's id, sent as Amplitude `device_id` and Profile Store `DeviceId`.
The warehouse's identity map links the sources through exactly these rules.

Experiments carry what a real Optimizely project holds about them (names, variation keys, planned
weights in basis points, the ordered metrics and the events they count), which the Optimizely emulator
serves through the REST API; what the emulator really does (`traffic_share`, `conversion_rate`) is
planted separately, so a planted fault shows as a difference between the two.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass
from functools import cached_property

COUNTRIES: tuple[tuple[str, str], ...] = (
    ("US", "Boston"),
    ("US", "Austin"),
    ("GB", "London"),
    ("DE", "Berlin"),
    ("FR", "Paris"),
    ("SE", "Stockholm"),
    ("IN", "Pune"),
    ("BR", "Recife"),
    ("JP", "Osaka"),
    ("CA", "Toronto"),
)
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")
PLATFORMS = ("Web", "iOS", "Android")
PAGE_EVENTS = (("homepage_view", 1.6), ("detail_page_view", 1.1), ("add_to_cart", 0.3))
"""Optimizely events outside any experiment: (key, mean count per active person and day)."""
HABIT_EVENT = "lesson_complete"
HABIT_MEAN = 0.8
HABIT_SHAPE = 1.5
"""Each person completes lessons at their own daily rate, gamma-distributed across people (mean 0.8,
shape 1.5): a habit that persists, so the days before an exposure predict the days after it."""


def optimizely_event_id(event_key: str) -> str:
    """An Optimizely event's id, as E3 writes it in `entity_id` and the REST API serves it as `Event.id`:
    16 digits and above 2**53, as Optimizely's are, so a client that parses it through a float gets it
    wrong."""
    return str(9_100_000_000_000_001 + int.from_bytes(event_key.encode()[:6].ljust(6, b"_"), "big") % 10**12)


@dataclass(frozen=True)
class Person:
    index: int
    user_id: str
    amplitude_id: int
    device_id: str
    email: str
    name: str
    country: str
    city: str
    ip_address: str
    platform: str


@dataclass(frozen=True)
class Variation:
    id: str
    name: str
    traffic_share: float
    """The share of visitors the emulator really sends here; differs from the plan only for a planted SRM."""
    conversion_rate: float
    """The planted share of exposed people who convert on the experiment's metric (see World.converts)."""
    revenue_cents: int
    """Revenue of one conversion, in cents; 0 where the metric carries no revenue."""
    planned_weight_bp: int
    """The weight Optimizely's metadata gives the variation, in basis points (the plan, not the practice)."""
    habit_lift: float = 0.0
    """For a habit experiment: how much more often a person does the habit event on a day they are shown
    this variation (0.08 is 8% more)."""

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Project:
    """An Optimizely project: `web` (Web Experimentation) or `feature` (Feature Experimentation)."""

    id: str
    name: str
    platform: str
    forbidden: bool = False
    """The sandbox's token may not read it: the REST API answers 403."""


@dataclass(frozen=True)
class ConfiguredMetric:
    """A metric as configured on an Optimizely experiment (REST `Metric`); `event` is an event key."""

    aggregator: str
    event: str | None
    scope: str = "visitor"
    field: str | None = None
    winning_direction: str = "increasing"
    display_title: str | None = None


@dataclass(frozen=True)
class Experiment:
    id: str
    campaign_id: str
    name: str
    metric_event: str
    variations: tuple[Variation, ...]
    start: dt.date
    end: dt.date
    project_id: str
    description: str
    metrics: tuple[ConfiguredMetric, ...]
    """In Optimizely's order: the first is the primary metric."""
    flag_key: str | None = None
    """Set for a Feature Experimentation rule (its project is a flags project)."""
    sample_ratio_mismatch: bool = False
    plants: str = "conversion"
    """What the world plants: `conversion` (each variation's `conversion_rate` of its `metric_event`),
    `habit` (the habit event's daily rate raised by `habit_lift` on exposure days: a metric that persists
    from before the exposure, for CUPED to find) or `nothing` (an A/A experiment)."""
    exposure_share: float = 1.0
    """The share of a person's active days on which they meet the experiment: below 1, many people have
    days of activity before their first exposure."""

    @property
    def control(self) -> Variation:
        return self.variations[0]

    def runs_on(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class Course:
    slug: str
    run: str
    unit_slugs: tuple[str, ...]


@dataclass(frozen=True)
class World:
    seed: int = 20261101
    people_count: int = 5_000
    account_id: str = "21468570738"
    amplitude_project_id: int = 374182
    start: dt.date = dt.date(2025, 1, 1)

    def rng(self, *scope: object) -> random.Random:
        """An independent, reproducible random stream for one scope, e.g. ("amplitude", day)."""
        digest = hashlib.sha256(repr((self.seed, *scope)).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def uuid(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    @cached_property
    def people(self) -> tuple[Person, ...]:
        rng = self.rng("people")
        people = []
        for index in range(self.people_count):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            country, city = rng.choice(COUNTRIES)
            people.append(
                Person(
                    index=index,
                    user_id=f"learner-{index:06d}",
                    amplitude_id=100_000_000 + index,
                    device_id=self.uuid(rng).upper(),
                    email=f"{first}.{last}.{index}@example.org".lower(),
                    name=f"{first} {last}",
                    country=country,
                    city=city,
                    ip_address=f"203.0.{index // 250 % 256}.{index % 250 + 1}",
                    platform=rng.choice(PLATFORMS),
                )
            )
        return tuple(people)

    @cached_property
    def projects(self) -> tuple[Project, ...]:
        return (
            Project("21000000001", "Learning platform (web)", "web"),
            Project("21000000002", "Learning platform (app)", "feature"),
            Project("21000000003", "Finance (no access)", "web", forbidden=True),
        )

    @cached_property
    def experiments(self) -> tuple[Experiment, ...]:
        web, app = self.projects[0].id, self.projects[1].id
        return (
            Experiment(
                id="9300000001",
                campaign_id="9300000101",
                name="checkout_button_colour",
                metric_event="purchase",
                variations=(
                    Variation("9300001001", "control", 0.5, 0.10, 4_900, 5_000),
                    Variation("9300001002", "green_button", 0.5, 0.13, 4_900, 5_000),
                ),
                start=self.start,
                end=dt.date(2100, 1, 1),
                project_id=web,
                description="Does a green checkout button sell more courses?",
                metrics=(
                    ConfiguredMetric("unique", "purchase"),
                    ConfiguredMetric("sum", "purchase", field="revenue", display_title="Revenue per visitor"),
                    ConfiguredMetric("unique", "add_to_cart"),
                    # Optimizely can count per session; the warehouse analyses visitors, so it lists this
                    # one as not analysed.
                    ConfiguredMetric("count", "detail_page_view", scope="session"),
                ),
            ),
            Experiment(
                id="9300000002",
                campaign_id="9300000102",
                name="course_page_layout",
                metric_event="enroll",
                variations=(
                    Variation("9300002001", "control", 1 / 3, 0.20, 0, 3_334),
                    Variation("9300002002", "syllabus_first", 1 / 3, 0.20, 0, 3_333),
                    Variation("9300002003", "video_first", 1 / 3, 0.26, 0, 3_333),
                ),
                start=self.start,
                end=dt.date(2100, 1, 1),
                project_id=app,
                description="Which course page layout gets more learners to enroll?",
                metrics=(
                    ConfiguredMetric("unique", "enroll"),
                    ConfiguredMetric("count", "detail_page_view", display_title="Detail views per learner"),
                ),
                flag_key="course_page",
            ),
            Experiment(
                # Planned 50/50 but the emulator sends 56% to control: a planted sample-ratio mismatch.
                # Its own metric event, so no other experiment's conversions blur its planted rates.
                id="9300000003",
                campaign_id="9300000103",
                name="pricing_banner",
                metric_event="subscribe",
                variations=(
                    Variation("9300003001", "control", 0.56, 0.08, 12_900, 5_000),
                    Variation("9300003002", "annual_first", 0.44, 0.08, 12_900, 5_000),
                ),
                start=self.start,
                end=dt.date(2100, 1, 1),
                project_id=web,
                description="Planted fault (sandbox): the emulator serves 56% control / 44% annual_first "
                "against the planned 50/50, so the sample-ratio check flags it. Not a real failure.",
                metrics=(
                    ConfiguredMetric("unique", "subscribe"),
                    ConfiguredMetric("sum", None, field="revenue", winning_direction="increasing"),
                ),
                sample_ratio_mismatch=True,
            ),
            Experiment(
                # A habit with a planted lift: people complete lessons at their own persistent rate, and 8%
                # more on days they are shown a reminder. Met on 35% of active days, so most units have
                # lessons before their first exposure, which CUPED uses.
                id="9300000004",
                campaign_id="9300000104",
                name="lesson_reminders",
                metric_event=HABIT_EVENT,
                variations=(
                    Variation("9300004001", "control", 0.5, 0.0, 0, 5_000),
                    Variation("9300004002", "reminder", 0.5, 0.0, 0, 5_000, habit_lift=0.08),
                ),
                start=self.start,
                end=dt.date(2100, 1, 1),
                project_id=web,
                description="Do lesson reminders get learners to complete more lessons? (sandbox: +8% "
                "lessons on the days a reminder is shown; the habit persists from before the exposure)",
                metrics=(
                    ConfiguredMetric("count", HABIT_EVENT, display_title="Lessons completed per learner"),
                    ConfiguredMetric("unique", HABIT_EVENT, display_title="Completed a lesson"),
                ),
                plants="habit",
                exposure_share=0.35,
            ),
            Experiment(
                # An A/A test: both variations identical, eight metrics. What the warehouse declares here
                # is a false discovery by construction.
                id="9300000005",
                campaign_id="9300000105",
                name="footer_copy_aa",
                metric_event="homepage_view",
                variations=(
                    Variation("9300005001", "control", 0.5, 0.0, 0, 5_000),
                    Variation("9300005002", "same_copy", 0.5, 0.0, 0, 5_000),
                ),
                start=self.start,
                end=dt.date(2100, 1, 1),
                project_id=web,
                description="A/A test (sandbox): two identical variations and eight metrics; every decision "
                "other than inconclusive would be a false discovery.",
                metrics=(
                    ConfiguredMetric("unique", "homepage_view"),
                    ConfiguredMetric("count", "homepage_view", display_title="Home page views per visitor"),
                    ConfiguredMetric("unique", "detail_page_view"),
                    ConfiguredMetric("count", "detail_page_view", display_title="Detail views per visitor"),
                    ConfiguredMetric("unique", "add_to_cart"),
                    ConfiguredMetric("unique", "purchase"),
                    ConfiguredMetric("sum", None, field="revenue", display_title="Revenue per visitor"),
                    ConfiguredMetric("count", HABIT_EVENT, display_title="Lessons per visitor"),
                ),
                plants="nothing",
                exposure_share=0.5,
            ),
        )

    @cached_property
    def courses(self) -> tuple[Course, ...]:
        return tuple(
            Course(slug=slug, run=run, unit_slugs=tuple(f"{slug}-unit-{n}" for n in range(1, 9)))
            for slug, run in (("intro-data", "2025"), ("statistics-101", "SP26"), ("dagster-basics", "FA26"))
        )

    def active_people(self, day: dt.date, share: float = 0.3) -> list[Person]:
        """The people active on `day`: a stable share of everyone, different each day."""
        rng = self.rng("active", day)
        return [person for person in self.people if rng.random() < share]

    def assign(self, experiment: Experiment, person: Person) -> Variation:
        """The variation a person is bucketed into, fixed for the experiment's life, as Optimizely does."""
        point = self.rng("bucket", experiment.id, person.user_id).random()
        cumulative = 0.0
        for variation in experiment.variations:
            cumulative += variation.traffic_share
            if point < cumulative:
                return variation
        return experiment.variations[-1]

    def meets(self, experiment: Experiment, person: Person, day: dt.date) -> bool:
        """Whether `person`, active on `day`, meets `experiment` that day (a decision is made)."""
        if experiment.exposure_share >= 1.0:
            return True
        return self.rng("meets", experiment.id, person.user_id, day).random() < experiment.exposure_share

    def habit_rate(self, person: Person) -> float:
        """The person's own mean of the habit event per active day."""
        return self.rng("habit", person.user_id).gammavariate(HABIT_SHAPE, HABIT_MEAN / HABIT_SHAPE)

    def converts(self, experiment: Experiment, person: Person) -> bool:
        """Whether `person` converts on the experiment's metric: decided once per person and experiment.

        A converter converts on every day they are exposed and a non-converter never, so the planted
        `conversion_rate` is exactly the share of exposed people who convert: what experiment results
        measure, however many days a person happens to visit.
        """
        draw = self.rng("converts", experiment.id, person.user_id).random()
        return draw < self.assign(experiment, person).conversion_rate

    def person_by_email(self, email: str) -> Person | None:
        return next((p for p in self.people if p.email == email.lower()), None)
