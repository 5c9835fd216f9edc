import json
import random
import re
from pathlib import Path

import pytest

from event_platform.sources.tracking.events import (
    BUILTIN_EVENT_TYPES,
    PERSONAL_KEY_WORDS,
    PERSONAL_KEYS,
    EventTypeRegistry,
    InvalidEventError,
    Problem,
    check_size,
    encode_event,
    load_registry,
    needs_value_check,
    personal_data_paths,
)

VIDEO_END = "kinesinlms.course.video.end"
VALID_DATA = {
    "kinesinlms.core.user.enrollment.activated": {"cohort_id": 3, "cohort_name": "Fall"},
    "kinesinlms.course.content.page_view": {"unit_display_name": "Unit 1"},
    "kinesinlms.course.home.page_view": {"page": "overview"},
    "kinesinlms.course.search.search_request": {"search_text": "p-value"},
    "kinesinlms.course.resource.download": {"course_resource_name": "slides.pdf"},
    "kinesinlms.course.assessment.submitted": {
        "assessment_id": "quiz-1",
        "assessment_type": "multiple_choice",
        "answer_id": 7,
        "status": "complete",
        "attempts": 2,
        "score": 0.5,
    },
    "kinesinlms.course.video.activity": {"video_id": "v", "video_event_type": VIDEO_END},
    "kinesinlms.course.progress.milestone.completed": {"milestone_type": "video", "milestone_id": 4},
}


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "uuid": "6f1c5c8e-2b7a-4d8e-9a3c-1f2e3d4c5b6a",
        "event_type": "kinesinlms.course.video.activity",
        "time": "2014-03-03T16:19:05.584523+00:00",
        "anon_username": "learner-000042",
        "course_slug": "intro-data",
        "event_data": {"video_id": "v1", "video_event_type": "kinesinlms.course.video.play"},
    }
    return {**base, **overrides}


def refusal(**overrides: object) -> InvalidEventError:
    with pytest.raises(InvalidEventError) as raised:
        EventTypeRegistry().validate(event(**overrides))
    return raised.value


@pytest.mark.parametrize("event_type", [t.name for t in BUILTIN_EVENT_TYPES])
def test_every_vendor_event_type_is_accepted_with_its_documented_data(event_type: str) -> None:
    data = VALID_DATA.get(event_type, {})
    valid = EventTypeRegistry().validate(event(event_type=event_type, event_data=data))
    assert valid["event_type"] == event_type
    assert valid["course_run"] is None  # absent context fields become explicit nulls


def test_the_registry_knows_every_type_of_vendors_md() -> None:
    assert len(EventTypeRegistry().names) == 16


def test_time_is_normalised_to_utc_with_microseconds() -> None:
    valid = EventTypeRegistry().validate(event(time="2014-03-03T17:19:05+01:00"))
    assert valid["time"] == "2014-03-03T16:19:05.000000+00:00"


def test_unknown_type_is_refused_with_a_hint() -> None:
    error = refusal(event_type="kinesinlms.course.teleport")
    assert error.problem is Problem.UNKNOWN_TYPE
    assert "kinesinlms.course.teleport" in error.reason and "TRACKING_EVENT_TYPES_FILE" in error.reason


def test_missing_video_id_names_the_field() -> None:
    error = refusal(event_data={"video_event_type": "kinesinlms.course.video.play"})
    assert error.problem is Problem.MISSING_FIELD
    assert "event_data.video_id is required for kinesinlms.course.video.activity" in error.reason


def test_video_event_type_outside_the_enum_is_refused() -> None:
    error = refusal(event_data={"video_id": "v1", "video_event_type": "kinesinlms.course.video.rewind"})
    assert error.problem is Problem.NOT_ALLOWED
    assert "event_data.video_event_type" in error.reason
    assert "kinesinlms.course.video.replay_clicked" in error.reason


def test_wrong_json_type_is_refused_and_booleans_are_not_integers() -> None:
    error = refusal(
        event_type="kinesinlms.course.progress.milestone.completed",
        event_data={"milestone_type": "video", "milestone_id": True},
    )
    assert error.problem is Problem.WRONG_TYPE
    assert "event_data.milestone_id must be integer or string, got boolean" in error.reason


@pytest.mark.parametrize(
    ("overrides", "problem", "words"),
    [
        ({"uuid": None}, Problem.MISSING_FIELD, "uuid is required"),
        ({"uuid": "not-a-uuid"}, Problem.WRONG_TYPE, "uuid is not a UUID"),
        ({"time": "2014-03-03 16:19:05"}, Problem.WRONG_TYPE, "no UTC offset"),
        ({"time": "yesterday"}, Problem.WRONG_TYPE, "ISO 8601"),
        ({"event_type": None}, Problem.MISSING_FIELD, "event_type is required"),
        ({"event_data": ["a"]}, Problem.WRONG_TYPE, "event_data must be an object, got array"),
        ({"course_slug": {"x": 1}}, Problem.WRONG_TYPE, "course_slug must be a string"),
        ({"colour": "red"}, Problem.UNKNOWN_FIELD, "unknown top-level field(s) 'colour'"),
    ],
)
def test_envelope_problems_are_precise(overrides: dict[str, object], problem: Problem, words: str) -> None:
    error = refusal(**overrides)
    assert error.problem is problem
    assert words in error.reason


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        (
            {
                "event_data": {"search_text": "mail ada.lovelace@example.org now"},
                "event_type": "kinesinlms.course.search.search_request",
            },
            "$.event_data.search_text (an email address)",
        ),
        ({"page_url": "/courses/x/?user=ada%40x.org&e=grace@example.com"}, "$.page_url (an email address)"),
        (
            {
                "event_data": {
                    "video_id": "v",
                    "video_event_type": "kinesinlms.course.video.play",
                    "answers": [{"text": "hi"}, {"text": "grace@example.com"}],
                }
            },
            "$.event_data.answers[1].text",
        ),
        (
            {
                "event_data": {
                    "video_id": "v",
                    "video_event_type": "kinesinlms.course.video.play",
                    "grace@example.com": 1,
                }
            },
            "$.event_data.<key> (an email address as a key)",
        ),
        (
            {
                "event_data": {
                    "video_id": "v",
                    "video_event_type": "kinesinlms.course.video.play",
                    "learner": {"First-Name": "Grace"},
                }
            },
            "$.event_data.learner.First-Name",
        ),
        (
            {
                "event_data": {
                    "video_id": "v",
                    "video_event_type": "kinesinlms.course.video.play",
                    "username": "ghopper",
                }
            },
            "$.event_data.username (a person's username)",
        ),
    ],
)
def test_personal_data_anywhere_is_refused_unrepeated(overrides: dict[str, object], where: str) -> None:
    error = refusal(**overrides)
    assert error.problem is Problem.PERSONAL_DATA
    assert where in error.reason
    assert "example.com" not in error.reason and "Grace" not in error.reason and "ghopper" not in error.reason


def test_fields_that_merely_contain_name_are_not_personal() -> None:
    data = {"cohort_id": 1, "cohort_name": "Fall", "unit_display_name": "Unit 2", "name": None}
    assert list(personal_data_paths({"event_data": data})) == []


def test_every_personal_key_holds_a_word_the_quick_test_looks_for() -> None:
    assert all(any(word in key for word in PERSONAL_KEY_WORDS) for key in PERSONAL_KEYS)


def test_a_personal_key_in_any_case_beside_anon_username_is_refused() -> None:
    data = {"video_id": "v", "video_event_type": "kinesinlms.course.video.play", "PHONE": "555-0100"}
    assert refusal(event_data=data).problem is Problem.PERSONAL_DATA


OVERFLOW_MARKERS = re.compile(rb"NaN|Infinity|\d{19}|\d[eE][+-]?\d{3}")
"""What the JSON parser turns into markers, as a regular expression: the oracle of the quick test."""


def test_the_quick_value_test_finds_every_body_the_regular_expression_finds() -> None:
    shapes = [b"1e308", b"2E+400", b"3e-999", b"9" * 19, b"-" + b"1" * 25, b"NaN", b"Infinity", b"1e30"]
    shapes += [b"12345", b"e123", b"1.5e10", b"x" * 3, b'"3e1234ab-uuid"', rb"\u0030"]
    generator = random.Random(7)
    for _ in range(3000):
        body = b'{"a": ' + b" ".join(generator.choices(shapes, k=generator.randint(1, 4))) + b"}"
        assert needs_value_check(body) == bool(OVERFLOW_MARKERS.search(body)), body
    assert needs_value_check(b"[" * 40)  # nesting past the limit needs the walk too


@pytest.mark.parametrize("anon_username", ["ada@example.org", "Ada Lovelace", "", None, 42, "x" * 129])
def test_anon_username_must_be_an_anonymous_token(anon_username: object) -> None:
    error = refusal(anon_username=anon_username)
    assert error.problem in (Problem.IDENTITY, Problem.PERSONAL_DATA)


def test_size_limit() -> None:
    line = encode_event(event(event_data={"video_id": "v" * 200, "video_event_type": VIDEO_END}))
    check_size(line, len(line))
    with pytest.raises(InvalidEventError, match=f"{len(line)} bytes, over the limit of 100 bytes") as raised:
        check_size(line, 100)
    assert raised.value.problem is Problem.TOO_LARGE


CUSTOM_TYPES = {
    "acme.quiz.started": {
        "fields": {
            "quiz_id": {"type": ["string", "integer"]},
            "mode": {"type": "string", "required": False, "enum": ["practice", "exam"]},
        }
    }
}


def test_registry_is_extended_by_a_mapping() -> None:
    registry = EventTypeRegistry().extended(CUSTOM_TYPES)
    assert "acme.quiz.started" in registry and "kinesinlms.core.user.login" in registry
    registry.validate(event(event_type="acme.quiz.started", event_data={"quiz_id": 5}))
    with pytest.raises(InvalidEventError, match=r"event_data\.mode is not one of the 2 allowed values"):
        registry.validate(event(event_type="acme.quiz.started", event_data={"quiz_id": 5, "mode": "live"}))


def test_registry_is_extended_by_the_types_file(tmp_path: Path) -> None:
    path = tmp_path / "types.json"
    path.write_text(json.dumps(CUSTOM_TYPES))
    assert "acme.quiz.started" in load_registry(str(path))
    assert load_registry(None).names == EventTypeRegistry().names


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"acme.x": {"fields": {"email": {"type": "string"}}}}, "would hold personal data"),
        ({"acme.x": {"fields": {"n": {"type": "decimal"}}}}, "has type 'decimal'"),
        ({"acme.x": "nope"}, "expected an object with 'fields'"),
    ],
)
def test_bad_type_configuration_is_explained(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventTypeRegistry().extended(config)


def test_unreadable_types_file_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "types.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="TRACKING_EVENT_TYPES_FILE"):
        load_registry(str(path))
