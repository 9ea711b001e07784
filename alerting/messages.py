"""Pure core of what people read: alert texts for SMS, in zh-CN and en."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from carebed.schemas import FindingCode, Severity

LANGUAGES = ("zh-CN", "en")

CAUSES: dict[FindingCode, dict[str, str]] = {
    FindingCode.SOS: {"zh-CN": "按下了SOS紧急呼叫按钮", "en": "pressed the SOS button"},
    FindingCode.FALL: {"zh-CN": "可能跌倒了（手环检测到跌倒）", "en": "may have fallen (detected by the wearable)"},
    FindingCode.GAS_ALARM: {"zh-CN": "家中燃气浓度超过报警值", "en": "has a gas leak alarm at home"},
    FindingCode.CO_ALARM: {"zh-CN": "家中一氧化碳浓度超过报警值", "en": "has a carbon monoxide alarm at home"},
    FindingCode.WATER_LEAK: {"zh-CN": "家中漏水", "en": "has a water leak at home"},
    FindingCode.SMOKE_ALARM: {"zh-CN": "家中烟雾报警", "en": "has a smoke alarm at home"},
    FindingCode.DEVICE_OFFLINE: {"zh-CN": "家中的设备已离线", "en": "has a device at home that went offline"},
    FindingCode.INACTIVITY: {
        "zh-CN": "家中长时间没有活动，与平时不同",
        "en": "has shown no activity for unusually long",
    },
    FindingCode.LONG_WATER_FLOW: {
        "zh-CN": "家中用水持续时间异常（可能忘关水龙头）",
        "en": "has water running unusually long",
    },
    FindingCode.LONG_GAS_FLOW: {
        "zh-CN": "家中燃气使用时间异常（可能忘关灶火）",
        "en": "has gas burning unusually long",
    },
    FindingCode.NIGHT_WANDERING: {"zh-CN": "夜间活动异常", "en": "is unusually active at night"},
    FindingCode.ACTIVITY_DECLINE: {"zh-CN": "近几天活动量明显下降", "en": "has been much less active for several days"},
    FindingCode.POSSIBLE_LEAK: {
        "zh-CN": "家中水表显示持续细小流量（可能漏水）",
        "en": "has a constant trickle on the water meter",
    },
}

_URGENT = {Severity.CRITICAL, Severity.HIGH}

# The reply codes are alerting.escalation.REPLIES; these lines tell responders about them.
REPLY_HINT = {
    "zh-CN": "回复1接受，2转给下一位，3表示已到达，9表示已处理。",
    "en": "Reply 1 to accept, 2 to pass it on, 3 when you arrive, 9 when resolved.",
}
VOICE_PROMPT = {"zh-CN": "接受请按1，转给下一位请按2。", "en": "Press 1 to accept. Press 2 to pass it on."}
VOICE_ACCEPTED = {
    "zh-CN": "已确认，谢谢您。到达后请回复短信3。",
    "en": "Thank you, you have accepted. Please reply 3 by text when you arrive.",
}
VOICE_TAKEN = {
    "zh-CN": "此告警已由他人接受，谢谢您。",
    "en": "Someone else has already accepted this alert. Thank you.",
}
VOICE_PASSED = {"zh-CN": "好的，我们将通知下一位联系人。", "en": "Thank you, we will call the next person."}
VOICE_NO_KEY = {
    "zh-CN": "没有收到按键，我们将联系其他人。再见。",
    "en": "No key was pressed. We will call others. Goodbye.",
}
SMS_CONFIRM = {
    "accept": {"zh-CN": "已确认由您处理告警 #{id}，谢谢。", "en": "You have accepted alert #{id}. Thank you."},
    "pass": {"zh-CN": "好的，告警 #{id} 将通知下一位。", "en": "Alert #{id} is passed on. Thank you."},
    "arrived": {"zh-CN": "已记录您到达（告警 #{id}）。", "en": "Arrival recorded for alert #{id}."},
    "resolved": {"zh-CN": "告警 #{id} 已关闭，谢谢。", "en": "Alert #{id} is closed. Thank you."},
    "unknown": {"zh-CN": "未能识别回复。", "en": "Reply not understood."},
    "too_late": {"zh-CN": "告警 #{id} 已由他人处理，谢谢。", "en": "Alert #{id} has already been taken. Thank you."},
}


@dataclass(frozen=True, slots=True)
class AlertText:
    alert_id: int
    code: FindingCode
    severity: Severity
    resident: str
    address: str
    onset: datetime


def sms_body(text: AlertText, language: str, tz: ZoneInfo) -> str:
    """One SMS that names the resident, the cause, the time and the alert number."""
    local = text.onset.astimezone(tz)
    cause = CAUSES[text.code]
    urgent = text.severity in _URGENT
    if language == "zh-CN":
        tag = "【carebed 紧急】" if urgent else "【carebed 提醒】"
        where = f"（{text.address}）" if text.address else ""
        return (
            f"{tag}{text.resident}{where}{cause['zh-CN']}，时间 {local:%m-%d %H:%M}。"
            f"请尽快联系或上门查看。告警编号 #{text.alert_id}"
        )
    tag = "[carebed URGENT]" if urgent else "[carebed notice]"
    where = f" ({text.address})" if text.address else ""
    return (
        f"{tag} {text.resident}{where} {cause['en']} at {local:%H:%M on %d %b}. "
        f"Please call or visit now. Alert #{text.alert_id}"
    )


def voice_text(text: AlertText, language: str, tz: ZoneInfo) -> str:
    """What a call to a responder says: the same facts as the SMS, worded to be heard."""
    local = text.onset.astimezone(tz)
    cause = CAUSES[text.code]
    if language == "zh-CN":
        where = f"，地址{text.address}" if text.address else ""
        return (
            f"您好，这里是carebed养老服务中心。{text.resident}{cause['zh-CN']}{where}，"
            f"时间{local.hour}点{local.minute}分。请尽快联系或上门查看。告警编号{text.alert_id}。"
        )
    where = f", at {text.address}" if text.address else ""
    return (
        f"Hello, this is the carebed care centre. {text.resident} {cause['en']}{where}, "
        f"at {local:%H:%M}. Please call or visit now. Alert number {text.alert_id}."
    )
