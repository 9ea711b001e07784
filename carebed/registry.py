"""The registry: homes, residents, devices and responders, and its file format.

One source of truth in the database. A file import is all or nothing: it is validated whole
(phone numbers as E.164, device ids unique) before anything is written, and each home in the
file replaces that home's residents, devices and responders in one transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import phonenumbers
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, selectinload

from carebed.db import Base
from carebed.schemas import DeviceEntry, DeviceKind, Identifier

Language = Annotated[str, Field(pattern="^(zh-CN|en)$")]
QUIET_HOURS = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$"


def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(
            "not an international phone number: write + and the country code first (E.164), e.g. +8613912345678"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"not a valid phone number for country code +{number.country_code}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


PhoneNumber = Annotated[str, AfterValidator(_e164)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResidentSpec(_Spec):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    birth_year: int | None = Field(None, ge=1900, le=2030)
    language: Language = "zh-CN"
    conditions: list[str] = Field(default_factory=list)


class DeviceSpec(_Spec):
    id: Identifier
    kind: DeviceKind
    model: str | None = None
    via: Identifier | None = Field(
        None, description="The hub id, or 'chirpstack', when the device speaks through one rather than itself."
    )


class ResponderSpec(_Spec):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    phone: PhoneNumber
    relation: str = "family"
    language: Language = "zh-CN"
    quiet_hours: str | None = Field(
        None,
        pattern=QUIET_HOURS,
        description="Local time span in which only critical alerts reach this responder, e.g. 22:00-07:00.",
    )


class HomeSpec(_Spec):
    id: Identifier
    address: str = ""
    street: str = ""
    community: str = ""
    access_notes: str = ""
    residents: list[ResidentSpec] = Field(min_length=1)
    devices: list[DeviceSpec] = Field(default_factory=list)
    responders: list[ResponderSpec] = Field(default_factory=list, description="In the order they are called.")


class RegistryFile(_Spec):
    homes: list[HomeSpec]

    @model_validator(mode="after")
    def _unique_ids(self) -> RegistryFile:
        for label, ids in (
            ("home", [h.id for h in self.homes]),
            ("device", [d.id for h in self.homes for d in h.devices]),
        ):
            seen: set[str] = set()
            for item in ids:
                if item in seen:
                    raise ValueError(f"{label} id {item!r} appears more than once")
                seen.add(item)
        return self


class Home(Base):
    __tablename__ = "homes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    street: Mapped[str] = mapped_column(String(100), default="", index=True)
    community: Mapped[str] = mapped_column(String(100), default="", index=True)
    access_notes: Mapped[str] = mapped_column(String(500), default="")
    residents: Mapped[list[Resident]] = relationship(
        back_populates="home", cascade="all, delete-orphan", order_by="Resident.id"
    )
    devices: Mapped[list[Device]] = relationship(back_populates="home", cascade="all, delete-orphan")
    responders: Mapped[list[Responder]] = relationship(
        back_populates="home", cascade="all, delete-orphan", order_by="Responder.position"
    )


class Resident(Base):
    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    birth_year: Mapped[int | None]
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    conditions: Mapped[list[str]] = mapped_column(default=list)
    home: Mapped[Home] = relationship(back_populates="residents")


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str | None] = mapped_column(String(100))
    via: Mapped[str | None] = mapped_column(String(64))
    credential_hash: Mapped[str | None] = mapped_column(
        String(200), doc="Mosquitto password hash; a device without one cannot log in to the broker."
    )
    home: Mapped[Home] = relationship(back_populates="devices")


class Responder(Base):
    __tablename__ = "responders"

    id: Mapped[int] = mapped_column(primary_key=True)
    home_id: Mapped[str] = mapped_column(ForeignKey("homes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20))
    relation: Mapped[str] = mapped_column(String(40), default="family")
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    quiet_hours: Mapped[str | None] = mapped_column(String(11))
    home: Mapped[Home] = relationship(back_populates="responders")


def parse_file(path: Path) -> RegistryFile:
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    return RegistryFile.model_validate(data)


IMPORT_CHUNK = 500


def import_registry(session: Session, registry: RegistryFile) -> int:
    """Write every home of the file, replacing what each had (devices keep their broker credentials).

    Homes go in chunks, a few statements per chunk rather than per home, so a city's registry
    loads in seconds. The caller commits. Returns the number of homes written.
    """
    for start in range(0, len(registry.homes), IMPORT_CHUNK):
        chunk = registry.homes[start : start + IMPORT_CHUNK]
        ids = [d.id for spec in chunk for d in spec.devices]
        credentials = dict(
            session.execute(select(Device.id, Device.credential_hash).where(Device.id.in_(ids))).tuples().all()
        )
        # Deleted first, so a device moved from one home to another is not in two places at once.
        session.execute(delete(Device).where(Device.id.in_(ids)))
        homes = {
            home.id: home
            for home in session.scalars(
                select(Home)
                .where(Home.id.in_([spec.id for spec in chunk]))
                .options(selectinload(Home.residents), selectinload(Home.devices), selectinload(Home.responders))
                .execution_options(populate_existing=True)
            )
        }
        for spec in chunk:
            home = homes.get(spec.id)
            if home is None:
                home = Home(id=spec.id)
                session.add(home)
            home.address, home.street = spec.address, spec.street
            home.community, home.access_notes = spec.community, spec.access_notes
            home.residents = [Resident(**r.model_dump()) for r in spec.residents]
            home.devices = [
                Device(id=d.id, kind=d.kind.value, model=d.model, via=d.via, credential_hash=credentials.get(d.id))
                for d in spec.devices
            ]
            home.responders = [Responder(position=i, **r.model_dump()) for i, r in enumerate(spec.responders)]
        session.flush()
    return len(registry.homes)


def device_credentials(session: Session) -> dict[str, str]:
    """Broker password hashes of every device that has one."""
    rows = session.execute(select(Device.id, Device.credential_hash).where(Device.credential_hash.is_not(None)))
    return {device_id: digest for device_id, digest in rows}


def device_directory(session: Session) -> dict[str, DeviceEntry]:
    """Every registered device, for the gateway's authentication of messages."""
    rows = session.execute(select(Device.id, Device.home_id, Device.kind, Device.via))
    return {device_id: DeviceEntry(home_id, DeviceKind(kind), via) for device_id, home_id, kind, via in rows}


def export_registry(session: Session) -> RegistryFile:
    """The whole registry as a file `carebed registry load` reads back unchanged (credentials stay out)."""
    homes = session.scalars(
        select(Home)
        .order_by(Home.id)
        .options(selectinload(Home.residents), selectinload(Home.devices), selectinload(Home.responders))
    ).all()
    for home in homes:
        home.devices.sort(key=lambda device: device.id)
    return RegistryFile.model_validate({"homes": homes}, from_attributes=True)
