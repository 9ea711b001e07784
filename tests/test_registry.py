"""The registry file: validated whole, imported in one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from carebed.db import make_engine, make_sessionmaker, migrate
from carebed.registry import Device, RegistryFile, Responder, device_directory, import_registry, parse_file
from carebed.schemas import DeviceKind

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "registry.example.yaml"


def home(phone: str = "+8613800138000", device: str = "d1") -> dict[str, object]:
    return {
        "id": "h1",
        "residents": [{"name": "王秀英"}],
        "devices": [{"id": device, "kind": "wearable"}],
        "responders": [{"name": "李娜", "phone": phone}],
    }


def test_the_example_registry_is_valid() -> None:
    registry = parse_file(EXAMPLE)
    assert registry.homes and all(h.responders for h in registry.homes)


def test_phone_numbers_are_normalised_to_e164() -> None:
    registry = RegistryFile.model_validate({"homes": [home(phone="+86 138-0013-8000")]})
    assert registry.homes[0].responders[0].phone == "+8613800138000"


@pytest.mark.parametrize("phone", ["13800138000", "+86123", "call me"])
def test_a_bad_phone_number_is_rejected_naming_the_field(phone: str) -> None:
    with pytest.raises(ValidationError) as error:
        RegistryFile.model_validate({"homes": [home(phone=phone)]})
    assert "homes.0.responders.0.phone" in str(error.value).replace("\n", " ").replace(" ", ".")


@pytest.mark.parametrize(
    ("phone", "says"),
    [
        ("13800138000", "not an international phone number: write + and the country code first (E.164)"),
        ("call me", "not an international phone number: write + and the country code first (E.164)"),
        ("+86123", "not a valid phone number for country code +86"),
    ],
)
def test_a_bad_phone_number_is_explained_in_plain_words(phone: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        RegistryFile.model_validate({"homes": [home(phone=phone)]})
    message = error.value.errors()[0]["msg"]
    assert says in message and "default region" not in message and "(0)" not in message


def test_a_device_in_two_homes_is_rejected() -> None:
    second = {**home(), "id": "h2"}
    with pytest.raises(ValidationError, match="device id 'd1'"):
        RegistryFile.model_validate({"homes": [home(), second]})


def test_reimport_replaces_a_homes_devices_and_responders(database_url: str) -> None:
    migrate(database_url)
    sessions = make_sessionmaker(make_engine(database_url))
    with sessions.begin() as session:
        import_registry(session, RegistryFile.model_validate({"homes": [home(device="d1")]}))
    with sessions.begin() as session:
        import_registry(session, RegistryFile.model_validate({"homes": [home(device="d2", phone="+8613900139000")]}))
    with sessions() as session:
        assert set(device_directory(session)) == {"d2"}
        assert device_directory(session)["d2"].kind is DeviceKind.WEARABLE
        assert session.scalars(select(Responder.phone)).all() == ["+8613900139000"]
        assert session.scalars(select(Device.home_id)).all() == ["h1"]


def test_quiet_hours_are_a_valid_span_of_local_time() -> None:
    spec = home()
    spec["responders"] = [{"name": "李娜", "phone": "+8613800138000", "quiet_hours": "22:00-07:00"}]
    assert RegistryFile.model_validate({"homes": [spec]}).homes[0].responders[0].quiet_hours == "22:00-07:00"
    for bad in ("25:00-07:00", "22:00", "10pm-7am"):
        spec["responders"] = [{"name": "李娜", "phone": "+8613800138000", "quiet_hours": bad}]
        with pytest.raises(ValidationError, match="quiet_hours"):
            RegistryFile.model_validate({"homes": [spec]})
