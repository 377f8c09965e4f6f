"""The country list reads as its readers look for a country: in Chinese by pinyin (CLDR's zh
collation), never by character code, with Taiwan named 中国台湾; in English by letters, accents
aside."""

from __future__ import annotations

import re

import httpx
from babel import Locale

from console.i18n import GB2312_LEVEL_1, PINYIN_AS, Translator
from console.session import SESSION_COOKIE
from console.underwriting import country_names
from shared.auth import mint_token
from shared.settings import DEVELOPMENT_JWT_SECRET
from tests.console.conftest import console_with_services


def in_order(names: list[str], *wanted: str) -> bool:
    return [n for n in names if n in wanted] == list(wanted)


async def shown_countries(locale: str) -> list[str]:
    """The countries page's list of countries as offered, in the reader's language."""

    def service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"type": "https://tci.example/problems/not-found"})

    async with console_with_services(service) as client:
        token = mint_token(DEVELOPMENT_JWT_SECRET, role="underwriter", subject="u",
                           ttl_seconds=600)  # fmt: skip
        client.cookies.set(SESSION_COOKIE, token)
        page = await client.get("/underwriting/countries", headers={"Accept-Language": locale})
    assert page.status_code == 200
    select = re.search(r'<select id="look-up-country".*?</select>', page.text, re.S)
    assert select is not None
    return re.findall(r'<option value="[A-Z]{2}"[^>]*>([^<]+?) \([A-Z]{2}\)</option>',
                      select.group(0))  # fmt: skip


async def test_the_chinese_country_list_is_in_pinyin_order_with_taiwan_as_chinas() -> None:
    names = await shown_countries("zh-CN")
    assert len(names) > 240
    assert names[0] == "阿尔巴尼亚"  # ā'ěrbāníyà
    # by character code 中 (U+4E2D) would come before 德 (U+5FB7) and 英 before 法
    assert in_order(names, "巴西", "德国", "法国", "梵蒂冈", "斐济", "瑙鲁", "日本", "英国",
                    "中国")  # fmt: skip
    assert "中国台湾" in names and "台湾" not in names


async def test_the_english_country_list_sorts_accented_names_by_their_letters() -> None:
    names = await shown_countries("en")
    assert in_order(names, "Afghanistan", "Åland Islands", "Albania")
    assert "Taiwan" in names and names == sorted(names, key=Translator("en").sort_key)


def test_every_chinese_country_name_has_a_pinyin_place() -> None:
    """Each character of each name is one GB2312 orders by pinyin, or read as one that is: a
    name Babel's data adds with another character fails here, not silently at the list's end."""
    territories = Locale.parse("zh_Hans_CN").territories
    names = [*country_names(Translator("zh-CN")).values(), *territories.values()]
    unplaced = {ch for name in names for ch in name if "\u4e00" <= ch <= "\u9fff"
                and ch not in PINYIN_AS and ch.encode("gb18030")[0] not in GB2312_LEVEL_1}  # fmt: skip
    assert unplaced == set()
