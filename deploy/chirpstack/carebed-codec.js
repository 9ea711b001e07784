// ChirpStack v4 device-profile codec (Device profiles > Codec > JavaScript functions) that decodes
// LoRaWAN frames into carebed's native fields. The frame layouts below are an example: change the
// byte offsets to your vendor's data sheet, keep the names and units of the output.
//
// carebed fields (gateway/adapters/chirpstack.py, carebed/schemas.py):
//   water_meter:  volume_l (cumulative litres), flow_l_min, leak (bool), battery_pct, battery_low
//   leak_sensor:  leak (bool, required), battery_pct, battery_low
//   gas_sensor:   ch4_lel_pct, co_ppm, volume_m3, flow_m3_h, gas_alarm, co_alarm, smoke, battery_pct
//   an alarm:     { event: "leak" | "tamper" } and nothing else (an event carries no readings)
// Unknown names are refused by the gateway (dead letter `invalid_payload`), so a typo shows at once.

function u16(bytes, i) {
  return (bytes[i] << 8) | bytes[i + 1];
}

function u32(bytes, i) {
  return ((bytes[i] << 24) >>> 0) + (bytes[i + 1] << 16) + (bytes[i + 2] << 8) + bytes[i + 3];
}

const EVENTS = { 1: "leak", 2: "tamper" };

function decodeUplink(input) {
  const b = input.bytes;
  switch (input.fPort) {
    case 1: // water meter report: volume 0.1 L (u32), flow 0.1 L/min (u16), flags (bit 0 leak), battery %
      if (b.length < 8) return { errors: ["water meter report: 8 bytes expected"] };
      return {
        data: {
          volume_l: u32(b, 0) / 10,
          flow_l_min: u16(b, 4) / 10,
          leak: (b[6] & 1) === 1,
          battery_pct: b[7],
        },
      };
    case 2: // leak sensor report: flags (bit 0 leak, bit 1 battery low), battery %
      if (b.length < 2) return { errors: ["leak sensor report: 2 bytes expected"] };
      return { data: { leak: (b[0] & 1) === 1, battery_low: (b[0] & 2) === 2, battery_pct: b[1] } };
    case 3: // alarm: event code
      if (!(b[0] in EVENTS)) return { errors: ["alarm: unknown event code " + b[0]] };
      return { data: { event: EVENTS[b[0]] } };
    default:
      return { errors: ["no carebed decoding for fPort " + input.fPort] };
  }
}

if (typeof module !== "undefined") module.exports = { decodeUplink };
