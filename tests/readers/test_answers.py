"""The answer rules of the authors' reader instructions (METHOD §3), in Python and in the schema."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perceptiongap.readers.answers import BIRADS, SQL_ANSWER_CHECK, AnswerError, check_answer

# The instructions' table, written out independently of the module: (BI-RADS, malignant, POM) examples.
VALID = [
    ("1", False, 0), ("2", False, 0), ("3", False, 0.5), ("3", False, 2), ("4A", True, 2.01), ("4A", True, 10),
    ("4B", True, 10.5), ("4B", True, 50), ("4C", True, 50.5), ("4C", True, 94.9), ("5", True, 95), ("5", True, 100),
    ("0", True, 40), ("0", False, 0), ("0", False, 100),
]  # fmt: skip
# The worked examples of the instructions' FAQ.
FAQ = [("1", False, 0), ("5", True, 95), ("4A", True, 5), ("2", False, 0), ("3", False, 2)]
INCONSISTENT = [
    # (BI-RADS, malignant, POM, rule)
    ("1", False, 1, "pom_matches_birads"), ("2", False, 0.1, "pom_matches_birads"),
    ("3", False, 0, "pom_matches_birads"), ("3", False, 2.5, "pom_matches_birads"),
    ("4A", True, 2, "pom_matches_birads"), ("4A", True, 11, "pom_matches_birads"),
    ("4B", True, 10, "pom_matches_birads"), ("4B", True, 51, "pom_matches_birads"),
    ("4C", True, 50, "pom_matches_birads"), ("4C", True, 95, "pom_matches_birads"),
    ("5", True, 94.9, "pom_matches_birads"),
    ("3", True, 1, "malignant_matches_birads"), ("1", True, 0, "malignant_matches_birads"),
    ("4A", False, 5, "malignant_matches_birads"), ("5", False, 99, "malignant_matches_birads"),
    ("6", True, 99, "birads_category"), ("4", True, 30, "birads_category"), (4, True, 30, "birads_category"),
    ("0", True, 101, "pom_scale"), ("0", True, -1, "pom_scale"), ("0", True, float("nan"), "pom_scale"),
    ("1", False, "0", "pom_scale"), ("1", 0, 0, "malignant_matches_birads"),
]  # fmt: skip


@pytest.mark.parametrize(("birads", "malignant", "pom"), VALID + FAQ)
def test_answers_consistent_with_the_instructions_are_accepted(birads, malignant, pom):
    answer = check_answer("L", birads, malignant, pom)
    assert (answer.birads, answer.malignant, answer.pom) == (birads, malignant, float(pom))


@pytest.mark.parametrize(("birads", "malignant", "pom", "rule"), INCONSISTENT)
def test_an_inconsistent_answer_names_the_rule_it_breaks(birads, malignant, pom, rule):
    with pytest.raises(AnswerError) as caught:
        check_answer("R", birads, malignant, pom)
    assert caught.value.rule == rule
    assert caught.value.breast == "R"
    assert str(caught.value).startswith("right breast: ")


def test_the_message_states_the_allowed_range():
    with pytest.raises(AnswerError, match=r"right breast: BI-RADS 4B needs 10 < POM <= 50, got 60"):
        check_answer("R", "4B", True, 60)
    with pytest.raises(AnswerError, match=r"left breast: BI-RADS 3 means not malignant \(BI-RADS 1-3"):
        check_answer("L", "3", True, 1)


@pytest.fixture(scope="module")
def answer_table():
    connection = sqlite3.connect(":memory:")
    connection.execute(f"CREATE TABLE a (birads TEXT, malignant INTEGER, pom REAL, CHECK ({SQL_ANSWER_CHECK}))")
    return connection


def _python_accepts(birads, malignant, pom) -> bool:
    try:
        check_answer("L", birads, malignant, pom)
    except AnswerError:
        return False
    return True


def _sql_accepts(connection, birads, malignant, pom) -> bool:
    try:
        connection.execute("INSERT INTO a VALUES (?, ?, ?)", (birads, int(malignant), pom))
    except sqlite3.IntegrityError:
        return False
    connection.execute("DELETE FROM a")
    return True


@settings(max_examples=400, deadline=None)
@given(
    birads=st.sampled_from(BIRADS),
    malignant=st.booleans(),
    pom=st.one_of(st.sampled_from([0.0, 2.0, 10.0, 50.0, 95.0, 100.0]), st.floats(-5, 105, allow_nan=False)),
)
def test_the_schema_check_agrees_with_the_python_rules(answer_table, birads, malignant, pom):
    assert _python_accepts(birads, malignant, pom) == _sql_accepts(answer_table, birads, malignant, pom)
