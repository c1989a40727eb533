use super::*;

fn wa(s: &str) -> String {
    to_whatsapp(s)
}
fn plain(s: &str) -> String {
    to_plain(s)
}

#[test]
fn basic_styles() {
    assert_eq!(wa("[b]bold[/b] text"), "*bold* text");
    assert_eq!(
        wa("[i]it[/i] [s]gone[/s] [u]under[/u]"),
        "_it_ ~gone~ under"
    );
    assert_eq!(
        plain("[b]bold[/b] [i]it[/i] [s]x[/s] [u]u[/u]"),
        "bold it x u"
    );
}

#[test]
fn tags_are_case_insensitive() {
    assert_eq!(
        wa("[B]x[/b] [I]y[/I] [Url=https://a.example]A[/URL]"),
        "*x* _y_ A (https://a.example)"
    );
    assert_eq!(wa("a[BR]b[Br]c"), "a\nb\nc");
}

#[test]
fn the_documented_operator_signature() {
    // apidocs OnImConnectorMessageAdd example text.
    assert_eq!(
        wa("[b]Samantha Johnson:[/b] [br]Good afternoon!"),
        "*Samantha Johnson:*\nGood afternoon!"
    );
    assert_eq!(
        plain("[b]Samantha Johnson:[/b] [br]Good afternoon!"),
        "Samantha Johnson:\nGood afternoon!"
    );
}

#[test]
fn markers_hug_the_text_and_do_not_cross_lines() {
    assert_eq!(wa("[b] spaced [/b]!"), " *spaced* !");
    assert_eq!(wa("[b]one[br]two[/b]"), "*one*\n*two*");
    assert_eq!(wa("[b]  [/b]x"), "  x");
    assert_eq!(wa("[i][/i]"), "");
}

#[test]
fn nesting() {
    assert_eq!(wa("[b][i]both[/i][/b]"), "*_both_*");
    assert_eq!(wa("[b]a [i]b[/i] c[/b]"), "*a _b_ c*");
    // The same style inside itself is not doubled.
    assert_eq!(wa("[b]a [b]b[/b] c[/b]"), "*a b c*");
    assert_eq!(plain("[b][i][s]x[/s][/i][/b]"), "x");
}

#[test]
fn links() {
    assert_eq!(
        wa("see [url=https://example.com/a]our site[/url]"),
        "see our site (https://example.com/a)"
    );
    assert_eq!(wa("[url]https://example.com[/url]"), "https://example.com");
    assert_eq!(
        wa("[url=https://example.com/]https://example.com[/url]"),
        "https://example.com/"
    );
    assert_eq!(
        wa("[url=\"https://q.example\"]q[/url]"),
        "q (https://q.example)"
    );
    assert_eq!(
        wa("[url=https://e.example][b]bold link[/b][/url]"),
        "*bold link* (https://e.example)"
    );
    assert_eq!(
        plain("[url=https://e.example]text[/url]"),
        "text (https://e.example)"
    );
    assert_eq!(wa("[url=https://e.example][/url]"), "https://e.example");
}

#[test]
fn quotes() {
    assert_eq!(
        wa("[quote]line one[br]line two[/quote]reply"),
        "> line one\n> line two\nreply"
    );
    assert_eq!(wa("hello[quote]q[/quote]"), "hello\n> q");
    assert_eq!(wa(">>first\n>>second\nanswer"), "> first\n> second\nanswer");
    let block = "------------------------------------------------------\n\
                 John Doe [08.04.2016 13:06:49]\nHello everyone!\n\
                 ------------------------------------------------------\nHi John";
    assert_eq!(
        wa(block),
        "> John Doe [08.04.2016 13:06:49]\n> Hello everyone!\nHi John"
    );
    assert_eq!(plain("[QUOTE]q[/QUOTE]"), "> q");
}

#[test]
fn code_is_verbatim() {
    assert_eq!(
        wa("[code]let x = [b]1[/b];[/code]"),
        "```let x = [b]1[/b];```"
    );
    assert_eq!(plain("[CODE]a*b[/code]"), "a*b");
    assert_eq!(wa("x [code]unclosed [b]y"), "x unclosed [b]y");
}

#[test]
fn mentions_and_commands_keep_their_text() {
    assert_eq!(wa("[USER=12]Anna Smith[/USER], hi"), "Anna Smith, hi");
    assert_eq!(wa("[user=all]Everyone[/user]"), "Everyone");
    assert_eq!(wa("[chat=imol|789]Line[/chat]"), "Line");
    assert_eq!(wa("[context=chat123/456]this[/context]"), "this");
    assert_eq!(
        wa("[send=/help]Help[/send] [put=/s]Search[/put]"),
        "Help Search"
    );
    assert_eq!(
        wa("[call=+19991234567]Call us[/call]"),
        "Call us (+19991234567)"
    );
    assert_eq!(wa("[call]+19991234567[/call]"), "+19991234567");
}

#[test]
fn decorations_are_stripped() {
    assert_eq!(
        wa("[color=#ff0000]red[/color] [size=20]big[/size]"),
        "red big"
    );
    assert_eq!(
        wa("smile [icon=https://x.example/i.png size=20 title=smile] ok"),
        "smile  ok"
    );
    assert_eq!(
        wa("[img size=medium]https://x.example/p.jpg [/img]"),
        "https://x.example/p.jpg"
    );
    assert_eq!(
        wa("file [disk=123] at [timestamp=1645844720 format=SHORT_TIME_FORMAT]"),
        "file  at"
    );
    assert_eq!(wa("[font=Arial]f[/font][center]c[/center]"), "f\nc");
}

#[test]
fn lists() {
    assert_eq!(
        wa("Options:[list][*]one[*]two[/list]done"),
        "Options:\n- one\n- two\ndone"
    );
}

#[test]
fn unknown_and_malformed() {
    // Unknown paired tag: stripped, text kept.
    assert_eq!(wa("[foo]bar[/foo] baz"), "bar baz");
    // Brackets that open no tag stay.
    assert_eq!(wa("see note [1] and [approx]"), "see note [1] and [approx]");
    assert_eq!(wa("a [ b ] c [] d [=x]"), "a [ b ] c [] d [=x]");
    assert_eq!(wa("array[0] = x[i]"), "array[0] = x[i]");
    // Tags never closed are not tags: shown as written, as Bitrix24 shows them.
    assert_eq!(wa("[b]never closed"), "[b]never closed");
    assert_eq!(wa("[b]bold[/b] [i]open"), "*bold* [i]open");
    // Stray closing tags vanish; unknown stray ones stay.
    assert_eq!(wa("text[/b] more[/zzz]"), "text more[/zzz]");
    // Crossed tags: closing the outer one closes the inner as unformatted.
    assert_eq!(wa("[b]a[i]b[/b]c[/i]"), "*ab*c");
    // A bracket never closed.
    assert_eq!(wa("[b"), "[b");
    assert_eq!(wa("[url=https://x.example"), "[url=https://x.example");
    assert_eq!(wa(""), "");
}

#[test]
fn line_endings_and_br_forms() {
    assert_eq!(wa("a\r\nb#BR#c\rd"), "a\nb\nc\nd");
    assert_eq!(wa("trailing   \nspaces  "), "trailing\nspaces");
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = "[b]".repeat(500) + "x" + &"[/b]".repeat(500);
    assert_eq!(wa(&deep), "*x*");
    let deep_mixed = "[quote]".repeat(200) + "q" + &"[/quote]".repeat(200);
    let out = wa(&deep_mixed);
    assert!(out.ends_with("q"), "{out}");
}

#[test]
fn unicode_is_kept() {
    assert_eq!(
        wa("[b]Привет[/b] 👋 [i]ünïcödé[/i]"),
        "*Привет* 👋 _ünïcödé_"
    );
    assert_eq!(plain("[b]Привет[/b]"), "Привет");
}
