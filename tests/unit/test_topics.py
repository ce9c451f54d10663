"""Topic templates: render, subscription filters, reading values back from a topic."""

import pytest

from ocpp_gw.protocol.topics import Template, wildcard_subscription

EMQX_UP = "${clientid}/up/${type}/${action}/${id}"
EMQX_DN = "${clientid}/dn/${type}/${action}/${id}"


# --- render -----------------------------------------------------------------------------------

@pytest.mark.parametrize("template, mountpoint, expected", [
    ("cp/${cid}", "ocpp/", "ocpp/cp/CP001"),
    ("cp/${cid}/Reply", "ocpp/", "ocpp/cp/CP001/Reply"),
    ("cs/${cid}", "ocpp/", "ocpp/cs/CP001"),
    ("cp/${clientid}", "", "cp/CP001"),
    ("cp/${cid}/Notify/${action}", "ocpp/", "ocpp/cp/CP001/Notify/BootNotification"),
    (EMQX_UP, "ocpp/", "ocpp/CP001/up/request/BootNotification/42"),
    ("${cid}/${cid}", "", "CP001/CP001"),
    ("cp-${cid}/${action}-${id}.${type}", "", "cp-CP001/BootNotification-42.request"),
    ("a{b}/${cid}/{x}", "", "a{b}/CP001/{x}"),
    ("$SYS/${cid}/$x/${action}", "", "$SYS/CP001/$x/BootNotification"),
    ("static/topic", "m/", "m/static/topic"),
    ("${id}", "${clientid}/", "CP001/42"),
])
def test_render_fills_every_placeholder_after_the_mountpoint(template, mountpoint, expected):
    topic = Template(template, mountpoint).render("CP001", "BootNotification", "42", "request")
    assert topic == expected


def test_render_leaves_placeholders_without_a_value_empty():
    assert Template(EMQX_UP).render("CP001") == "CP001/up///"


def test_render_takes_keyword_arguments():
    topic = Template(EMQX_UP).render(cid="c", action="a", unique_id="i", type_="error")
    assert topic == "c/up/error/a/i"


@pytest.mark.parametrize("template, placeholders", [
    ("cp/${cid}", {"cid"}),
    ("cp/${clientid}", {"cid"}),
    (EMQX_UP, {"cid", "type", "action", "id"}),
    ("static", set()),
    ("x-${action}", {"action"}),
])
def test_placeholders_name_what_the_template_carries(template, placeholders):
    assert Template(template).placeholders == placeholders


@pytest.mark.parametrize("template, fragment", [
    ("cp/${name}", "unknown placeholder"),
    ("cp/${}", "unknown placeholder"),
    ("cp/${CID}", "unknown placeholder"),
    ("cp/${cid", "is not closed"),
    ("cp/${cid}/${", "is not closed"),
    ("", "empty"),
])
def test_a_bad_template_is_refused(template, fragment):
    with pytest.raises(ValueError, match=fragment):
        Template(template)


def test_template_text_includes_the_mountpoint():
    assert Template("cp/${cid}", "ocpp/").text == "ocpp/cp/${cid}"


# --- subscriptions ----------------------------------------------------------------------------

@pytest.mark.parametrize("template, mountpoint, expected", [
    ("cs/${cid}", "ocpp/", "ocpp/cs/CP001"),
    (EMQX_DN, "ocpp/", "ocpp/CP001/dn/+/+/+"),
    ("cs/${cid}/#", "", "cs/CP001/#"),
    ("cs/${cid}/+/cmd", "", "cs/CP001/+/cmd"),
    ("cs/cp-${cid}/x", "", "cs/cp-CP001/x"),
    ("cs/${cid}/${type}-${action}/${id}", "", "cs/CP001/+/+"),
    ("cs/${cid}-${action}", "", "cs/+"),
])
def test_subscription_fills_the_cid_and_wildcards_every_other_level(template, mountpoint, expected):
    assert Template(template, mountpoint).subscription("CP001") == expected


@pytest.mark.parametrize("template, expected", [
    ("cs/${cid}", "cs/+"),
    (EMQX_DN, "+/dn/+/+/+"),
    ("cs/cp-${clientid}/#", "cs/+/#"),
    ("static", "static"),
])
def test_wildcard_subscription_covers_every_cp(template, expected):
    assert wildcard_subscription(template) == expected
    assert wildcard_subscription(Template(template)) == expected
    assert Template(template).wildcard() == expected


# --- match ------------------------------------------------------------------------------------

def test_match_reads_the_emqx_4_layout_back():
    template = Template(EMQX_DN, "ocpp/")
    assert template.match("ocpp/CP001/dn/request/Reset/42") == {
        "cid": "CP001", "type": "request", "action": "Reset", "id": "42"}


def test_match_returns_only_the_template_placeholders():
    assert Template("cs/${cid}", "ocpp/").match("ocpp/cs/CP001") == {"cid": "CP001"}


def test_match_reads_the_mountpoint_placeholders_too():
    assert Template("dn/${action}", "${clientid}/").match("CP9/dn/Reset") == {
        "cid": "CP9", "action": "Reset"}


@pytest.mark.parametrize("template, topic, expected", [
    ("cs/cp-${cid}", "cs/cp-CP001", {"cid": "CP001"}),
    ("cs/${cid}.in", "cs/CP.1.in", {"cid": "CP.1"}),
    ("cs/${cid}/${type}-${action}/${id}", "cs/A/request-Reset/7",
     {"cid": "A", "type": "request", "action": "Reset", "id": "7"}),
    ("cs/${cid}-${action}", "cs/CP-01-Reset", {"cid": "CP-01", "action": "Reset"}),
    ("cs/[${cid}]/(${id})", "cs/[A]/(1)", {"cid": "A", "id": "1"}),
])
def test_match_reads_levels_that_mix_text_and_placeholders(template, topic, expected):
    assert Template(template).match(topic) == expected


@pytest.mark.parametrize("template, topic", [
    (EMQX_DN, "ocpp/CP001/dn/request/Reset"),             # a level short
    (EMQX_DN, "ocpp/CP001/dn/request/Reset/42/x"),        # a level too many
    (EMQX_DN, "ocpp/CP001/up/request/Reset/42"),          # other literal
    (EMQX_DN, "CP001/dn/request/Reset/42"),               # no mountpoint
    (EMQX_DN, "ocpp/CP001/dn/request//42"),               # empty placeholder level
    (EMQX_DN, "ocpp//dn/request/Reset/42"),
    ("cs/cp-${cid}", "ocpp/cs/cp-"),                      # placeholder matches nothing
    ("cs/cp-${cid}", "ocpp/cs/xp-CP001"),
    ("cs/a.b/${cid}", "ocpp/cs/aXb/CP001"),               # literal dot is no regex dot
    ("cs/${cid}", "ocpp/cs/CP001/"),
    ("cs/${cid}", "ocpp/cs/CP\n001/x"),
    ("cs/${cid}/${clientid}", "ocpp/cs/A/B"),             # one placeholder, two values
])
def test_match_is_none_when_the_topic_does_not_fit(template, topic):
    assert Template(template, "ocpp/").match(topic) is None


def test_match_accepts_the_same_value_for_a_repeated_placeholder():
    assert Template("cs/${cid}/${clientid}").match("cs/A/A") == {"cid": "A"}


@pytest.mark.parametrize("topic, expected", [
    ("cs/A", {"cid": "A"}),
    ("cs/A/x", {"cid": "A"}),
    ("cs/A/x/y/z", {"cid": "A"}),
])
def test_match_honours_a_trailing_multi_level_wildcard(topic, expected):
    assert Template("cs/${cid}/#").match(topic) == expected


@pytest.mark.parametrize("topic, expected", [
    ("cs/A/anything/cmd", {"cid": "A"}),
    ("cs/A//cmd", {"cid": "A"}),
    ("cs/A/x/y/cmd", None),
])
def test_match_honours_a_single_level_wildcard(topic, expected):
    assert Template("cs/${cid}/+/cmd").match(topic) == expected


def test_a_lone_multi_level_wildcard_matches_everything():
    assert Template("#").match("a/b/c") == {}


@pytest.mark.parametrize("cid", ["CP001", "cp-1.2_3", "ÜberLader", "a b"])
def test_match_of_render_gives_back_the_values(cid):
    template = Template(EMQX_UP, "ocpp/")
    topic = template.render(cid, "StatusNotification", "f3b7-11", "response")
    assert template.match(topic) == {
        "cid": cid, "action": "StatusNotification", "id": "f3b7-11", "type": "response"}


def test_a_topic_rendered_for_a_cp_matches_its_subscription_template():
    template = Template(EMQX_DN, "ocpp/")
    assert template.subscription("CP001") == "ocpp/CP001/dn/+/+/+"
    assert template.match(template.render("CP001", "Reset", "9", "request"))["cid"] == "CP001"


# ${version} (SPEC §9)


def test_version_placeholder_renders_the_subprotocol():
    assert Template("cp/${version}/${cid}", "ocpp/").render("CP1", version="ocpp2.0.1") == "ocpp/cp/ocpp2.0.1/CP1"


def test_version_placeholder_is_subscribed_as_a_wildcard_and_read_back():
    template = Template("cs/${version}/${cid}")
    assert template.subscription("CP1") == "cs/+/CP1"
    assert template.match("cs/ocpp2.1/CP1") == {"version": "ocpp2.1", "cid": "CP1"}
