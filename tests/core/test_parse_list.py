"""The one parser of comma-separated command-line lists."""

import pytest

from neuralfactor.core.validation import parse_ints, parse_list, parse_shape


def test_items_are_stripped_and_empty_items_skipped():
    assert parse_list(" a, b,,c ,", "--methods") == ("a", "b", "c")
    assert parse_ints("4, 8,,12", "--ranks") == (4, 8, 12)
    assert parse_list("0.5,1e-3", "--tol", float) == (0.5, 1e-3)
    assert parse_list("128x256, 64X128", "--size", parse_shape) == ((128, 256), (64, 128))
    assert parse_list("", "--ranks", int) == ()


@pytest.mark.parametrize(
    ("text", "item", "message"),
    [
        ("4,x", int, r"'--opt' option takes comma-separated integers .*\. Got 'x' in '4,x'"),
        ("1.5", int, "comma-separated integers such as '4,8,12'. Got '1.5'"),
        ("a", float, "comma-separated numbers .* Got 'a'"),
        ("128x", parse_shape, "takes MxN sizes, comma-separated, .* Got '128x'"),
        ("0x4", parse_shape, "MxN sizes.* Got '0x4'"),
        ("2x3x4", parse_shape, "MxN sizes"),
    ],
)
def test_bad_items_name_the_option_and_the_item(text, item, message):
    with pytest.raises(ValueError, match=message):
        parse_list(text, "--opt", item)


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="comma-separated list. Got 5"):
        parse_list(5, "--ranks", int)
