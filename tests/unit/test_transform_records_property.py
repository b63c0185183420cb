"""Whatever bytes a record or an answer holds, the transform's record rules either
give bytes or raise ``RecordError`` (which fails the object naming its line),
never anything else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.inference_worker import transform_records as tr
from shared.transform import ObjectSettings

SELECTORS = st.sampled_from([None, "$", "$[1:]", "$[0,-1]", "$[:2]", "$.a", "$['a','b']", "$[5]"])
PIECES = [b"{", b"}", b"[", b"]", b'"a":', b",", b"1", b"-2.5", b'"x"', b"\n", b"\\", b" ", b"\xff"]
RECORDS = st.one_of(
    st.binary(max_size=200), st.lists(st.sampled_from(PIECES), max_size=60).map(b"".join)
)


@st.composite
def rules(draw: st.DrawFn) -> tr.RecordRules:
    settings = ObjectSettings(
        content_type=draw(st.sampled_from([None, "text/csv", "application/jsonlines"])),
        accept=draw(st.sampled_from([None, "text/csv", "application/json"])),
        input_filter=draw(SELECTORS),
        output_filter=draw(SELECTORS),
        join_source=draw(st.sampled_from(["Input", "None"])),
        generate_inference_id=draw(st.booleans()),
    )
    return tr.rules_for(settings, draw(RECORDS))


@given(rules(), RECORDS, RECORDS)
def test_records_and_answers_give_bytes_or_a_record_error(rule, record, answer):
    for step in (
        lambda: tr.filtered_input(rule, record).body,
        lambda: tr.output_record(rule, record, answer, inference_id="i", inference_time="t"),
        lambda: tr.answer_records(answer, 3),
    ):
        try:
            result = step()
        except tr.RecordError:
            continue
        assert isinstance(result, bytes | list)


def test_json_nested_past_the_interpreter_s_depth_is_a_record_error():
    rule = tr.rules_for(ObjectSettings(content_type="application/json", input_filter="$[0]"), b"[")
    deep = b"[" * 200_000 + b"]" * 200_000
    try:
        tr.filtered_input(rule, deep)
    except tr.RecordError as exc:
        assert "nested too deeply" in str(exc)
    else:
        raise AssertionError("a record nested 200,000 deep was read")
