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
