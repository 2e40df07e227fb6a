"""Code tables for the public fields: QR payloads carry short codes, verifiers resolve them
through the trust list (Chinese first, English second)."""

from __future__ import annotations

QUALIFICATIONS: dict[str, tuple[str, str]] = {
    "KG": ("幼儿园教师资格", "Kindergarten teacher"),
    "PS": ("小学教师资格", "Primary school teacher"),
    "JS": ("初级中学教师资格", "Junior secondary school teacher"),
    "SS": ("高级中学教师资格", "Senior secondary school teacher"),
    "VS": ("中等职业学校教师资格", "Secondary vocational school teacher"),
    "VP": ("中等职业学校实习指导教师资格", "Secondary vocational practice instructor"),
}

SUBJECTS: dict[str, tuple[str, str]] = {
    "00": ("幼儿园", "Kindergarten (all areas)"),
    "01": ("语文", "Chinese"),
    "02": ("数学", "Mathematics"),
    "03": ("英语", "English"),
    "04": ("物理", "Physics"),
    "05": ("化学", "Chemistry"),
    "06": ("生物", "Biology"),
    "07": ("思想政治", "Ideology and politics"),
    "08": ("历史", "History"),
    "09": ("地理", "Geography"),
    "10": ("音乐", "Music"),
    "11": ("体育与健康", "Physical education and health"),
    "12": ("美术", "Fine arts"),
    "13": ("信息技术", "Information technology"),
    "14": ("科学", "Science"),
    "15": ("道德与法治", "Morality and rule of law"),
    "16": ("心理健康教育", "Mental health education"),
    "17": ("日语", "Japanese"),
    "18": ("俄语", "Russian"),
    "19": ("通用技术", "General technology"),
    "20": ("特殊教育", "Special education"),
    "21": ("艺术", "Arts"),
    "22": ("综合实践活动", "Integrated practical activities"),
    "30": ("中等职业学校专业课", "Vocational specialised subject"),
    "31": ("中等职业学校文化课", "Vocational general subject"),
    "32": ("中等职业学校实习指导", "Vocational practical guidance"),
}

REVOCATION_CATEGORIES: dict[str, tuple[str, str]] = {
    "fraud": ("弄虚作假、骗取资格", "obtained by fraud"),
    "misconduct": ("品行不良、侮辱学生，影响恶劣", "serious misconduct"),
    "criminal": ("受到剥夺政治权利或者故意犯罪受到有期徒刑以上刑事处罚", "criminal conviction"),
    "error": ("认定结论错误，予以更正", "conclusion corrected"),
}
