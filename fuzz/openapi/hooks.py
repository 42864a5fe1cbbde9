"""Schemathesis hooks for onshi's OpenAPI document.

The document marks a 医療機関コード with `format: institution-code`: its pattern says the
prefecture and 点数表 digits, and the description says the check digit (which no regular
expression of sensible size can). This strategy draws codes that satisfy both, so a client
generator that knows the format sends only codes the server accepts.
"""

import schemathesis
from hypothesis import strategies as st


def check_digit(first9: str) -> int:
    """Luhn-style over the first 9 digits: from the right, weights 2,1,2,…, digit sums."""
    total = 0
    for i, ch in enumerate(reversed(first9)):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


@st.composite
def institution_code(draw, tables="1346"):
    prefecture = draw(st.integers(min_value=1, max_value=47))
    table = draw(st.sampled_from(tables))
    rest = draw(st.from_regex(r"\A[0-9]{6}\Z"))
    first9 = f"{prefecture:02d}{table}{rest}"
    return first9 + str(check_digit(first9))


assert check_digit("011011371") == 9 and check_digit("271420638") == 6

schemathesis.openapi.format("institution-code", institution_code())
for table in "1346":
    schemathesis.openapi.format(f"institution-code-{table}", institution_code(table))

# Where the document puts a 医療機関コード: body fields, path and query parameters.
CODE_FIELDS = {"code", "institution_code", "institution"}


def _with_check_digit(value):
    if isinstance(value, str) and len(value) == 10 and value.isdigit():
        return value[:9] + str(check_digit(value[:9]))
    return value


def _fix(container):
    if isinstance(container, dict):
        for key, value in container.items():
            if key in CODE_FIELDS:
                container[key] = _with_check_digit(value)
            else:
                _fix(value)
    elif isinstance(container, list):
        for item in container:
            _fix(item)


@schemathesis.hook
def before_call(context, case, kwargs):
    """The coverage phase builds values from patterns, not from the registered formats; give
    every 医療機関コード its check digit there too, as a client that knows the format would."""
    _fix(case.body)
    _fix(case.path_parameters)
    _fix(case.query)
