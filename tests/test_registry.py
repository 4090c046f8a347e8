import pytest

from polymodal.registry import Registry


def test_register_create_and_list():
    reg: Registry[object] = Registry("widget")

    @reg.register("small", tiny={"n": 1})
    def small(n: int = 3):
        """A small widget."""
        return ("small", n)

    assert reg.create("small", n=2) == ("small", 2)
    assert reg.get("small").tiny == {"n": 1}
    assert reg.get("small").summary == "A small widget."
    assert reg.names() == ["small"] and "small" in reg and len(reg) == 1


def test_unknown_name_suggests_close_matches():
    reg: Registry[object] = Registry("fusion")
    reg.register("late")(lambda: None)
    reg.register("lmf")(lambda: None)
    with pytest.raises(KeyError, match=r"unknown fusion 'lat'.*close matches: late.*polymodal list fusions"):
        reg.get("lat")


def test_duplicate_registration_is_an_error():
    reg: Registry[object] = Registry("encoder")
    reg.register("x")(lambda: None)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("x")(lambda: None)


def test_every_registry_is_filled():
    from polymodal.registries import ALL

    for kind, reg in ALL.items():
        assert len(reg) > 0, kind
        for entry in reg:
            assert entry.summary, f"{kind} {entry.name} has no docstring summary"
