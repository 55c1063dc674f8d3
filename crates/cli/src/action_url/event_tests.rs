use super::*;

fn get(target: &str) -> Result<PhoneEvent, RequestError> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    parse("GET", path, query)
}

fn kind(target: &str) -> EventKind {
    get(target).unwrap_or_else(|e| panic!("{target}: {e}")).kind
}

#[test]
fn every_yealink_key_of_the_facts_file_is_known() {
    use EventKind::*;
    let cases = [
        ("setup_completed", Started),
        ("registered", Registration(true)),
        ("unregistered", Registration(false)),
        ("register_failed", Registration(false)),
        ("off_hook", OffHook),
        ("on_hook", OnHook),
        ("incoming_call", Ringing),
        ("outgoing_call", Outgoing),
        ("call_established", Established),
        ("call_terminated", CallEnded),
        ("dnd_on", Dnd(true)),
        ("dnd_off", Dnd(false)),
        ("hold", Hold),
        ("unhold", Resume),
        ("held", Other),
        ("unheld", Other),
        ("mute", Other),
        ("unmute", Other),
        ("missed_call", RingingEnded),
        ("call_remote_canceled", RingingEnded),
        ("reject_incoming_call", RingingEnded),
        ("forward_incoming_call", RingingEnded),
        ("answer_new_incoming_call", Established),
        ("remote_busy", CallEnded),
        ("cancel_callout", CallEnded),
        ("always_fwd_on", Other),
        ("busy_fwd_off", Other),
        ("no_answer_fwd_on", Other),
        ("call_waiting_on", Other),
        ("transfer_call", Other),
        ("blind_transfer_call", Other),
        ("attended_transfer_call", Other),
        ("transfer_finished", Other),
        ("transfer_failed", Other),
        ("idle_to_busy", OffHook),
        ("busy_to_idle", OnHook),
        ("ip_change", Other),
        ("setup_autop_finish", Other),
        ("headset", Other),
        ("handfree", Other),
        ("peripheral_information", Other),
        ("vpn_ip", Other),
        // The web UI's labels.
        ("Open DND", Dnd(true)),
        ("Close DND", Dnd(false)),
    ];
    for (name, want) in cases {
        let target = format!("/yealink/1001/{}", name.replace(' ', "%20"));
        assert_eq!(kind(&target), want, "{name}");
    }
}

#[test]
fn every_snom_setting_and_short_name_is_known() {
    use EventKind::*;
    let cases = [
        ("action_setup_url", Started),
        ("action_incoming_url", Ringing),
        ("action_outgoing_url", Outgoing),
        ("action_offhook_url", OffHook),
        ("action_onhook_url", OnHook),
        ("action_connected_url", Established),
        ("action_disconnected_url", CallEnded),
        ("action_missed_url", RingingEnded),
        ("action_dnd_on_url", Dnd(true)),
        ("action_dnd_off_url", Dnd(false)),
        ("action_redirection_on_url", Other),
        ("action_redirection_off_url", Other),
        ("action_log_on_url", Registration(true)),
        ("action_log_off_url", Registration(false)),
        ("action_reg_failed", Registration(false)),
        ("action_hold", Hold),
        ("action_unhold", Resume),
        ("action_transfer", Other),
        ("action_blind_transfer", Other),
        ("action_attended_transfer", Other),
        ("action_received_attended_transfer", Other),
        ("action_longpress_url", Other),
        ("action_blacklist_url", Other),
        ("incoming", Ringing),
        ("connected", Established),
        ("disconnected", CallEnded),
        ("offhook", OffHook),
        ("log_on", Registration(true)),
    ];
    for (name, want) in cases {
        assert_eq!(kind(&format!("/snom/1001/{name}")), want, "{name}");
    }
}

#[test]
fn fanvil_names_in_their_ui_spelling_are_known() {
    use EventKind::*;
    let cases = [
        ("Setup Completed", Started),
        ("Log On", Registration(true)),
        ("Log Off", Registration(false)),
        ("Register Failed", Registration(false)),
        ("Off hook", OffHook),
        ("On hook", OnHook),
        ("Incoming Call", Ringing),
        ("Outgoing Call", Outgoing),
        ("Call Established", Established),
        ("Call Terminated", CallEnded),
        ("DND Enabled", Dnd(true)),
        ("DND Disabled", Dnd(false)),
        ("Idle To Busy", OffHook),
        ("Busy To Idle", OnHook),
    ];
    for (name, want) in cases {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", "1001")
            .append_pair("event", name)
            .finish();
        assert_eq!(kind(&format!("/fanvil?{q}")), want, "{name}");
    }
}

#[test]
fn variables_give_the_call_id_the_other_party_and_the_order() {
    let e = get(
        "/yealink/1001/incoming_call?remote=sip%3A1002%40pbx.example%3Buser%3Dphone\
         &display_remote=Bob%20B&call_id=abc%40host&seq=17&secret=x",
    )
    .unwrap();
    assert_eq!(e.vendor, Vendor::Yealink);
    assert_eq!(e.user, "1001");
    assert_eq!(e.name, "incoming_call");
    assert_eq!(e.call_id.as_deref(), Some("abc@host"));
    assert_eq!(e.seq, Some(17));
    assert_eq!(
        e.remote,
        Some(Party {
            number: "1002".into(),
            name: Some("Bob B".into())
        })
    );
    // Snom spells the call id with a hyphen.
    let e =
        get("/snom/1001/action_incoming_url?call-id=x1&remote=%22Ann%22%20%3Csip:+4930123@p%3E")
            .unwrap();
    assert_eq!(e.call_id.as_deref(), Some("x1"));
    assert_eq!(
        e.remote,
        Some(Party {
            number: "+4930123".into(),
            name: Some("Ann".into())
        })
    );
}

#[test]
fn variables_the_phone_left_unfilled_are_absent() {
    let e = get("/yealink/1001/dnd_on?remote=$remote&call_id=$call_id&display_remote=").unwrap();
    assert_eq!((e.remote, e.call_id), (None, None));
    assert!(matches!(
        get("/phone?user=$active_user&event=off_hook"),
        Err(RequestError::Malformed(_))
    ));
    assert!(matches!(
        get("/phone/$active_user/off_hook"),
        Err(RequestError::Malformed(_))
    ));
}

#[test]
fn mattersip_paths_and_actions_work_with_and_without_the_plugin_prefix() {
    use EventKind::*;
    let cases = [
        ("dnd-on", Dnd(true)),
        ("dnd-off", Dnd(false)),
        ("offhook", OffHook),
        ("onhook", OnHook),
        ("paused-on", Other),
        ("paused-off", Other),
        ("login", Registration(true)),
        ("logout", Registration(false)),
        ("agent-login", Other),
        ("agent-logout", Other),
        ("answering-call", Established),
    ];
    for (action, want) in cases {
        assert_eq!(
            kind(&format!("/sip/{action}/bob?secret=s")),
            want,
            "{action}"
        );
        let prefixed = format!("/plugins/net.bytemine.sip/sip/{action}/bob");
        assert_eq!(kind(&prefixed), want, "{prefixed}");
    }
    let e = get("/sip/incoming-call/alice%40contoso.com/%2B4930123").unwrap();
    assert_eq!(e.vendor, Vendor::Mattersip);
    assert_eq!((e.kind, e.user.as_str()), (Ringing, "alice@contoso.com"));
    assert_eq!(e.remote.unwrap().number, "+4930123");
    assert_eq!(kind("/sip/incoming-conf/bob/1002"), Ringing);
    assert_eq!(kind("/sip/unknown-exten/bob/1002"), Other);
    assert!(matches!(
        get("/sip/offhook"),
        Err(RequestError::Malformed(_))
    ));
    assert!(matches!(
        get("/sip/a/b/c/d"),
        Err(RequestError::Malformed(_))
    ));
    assert!(matches!(
        get("/sip/dance/bob"),
        Err(RequestError::UnknownEvent(_))
    ));
}

#[test]
fn bad_requests_say_what_is_wrong() {
    assert!(matches!(get("/"), Err(RequestError::NotFound(_))));
    assert!(matches!(
        get("/favicon.ico"),
        Err(RequestError::NotFound(_))
    ));
    assert!(matches!(
        get("/cisco/1001/off_hook"),
        Err(RequestError::NotFound(_))
    ));
    assert!(matches!(
        get("/yealink/1001"),
        Err(RequestError::Malformed(_))
    ));
    assert!(matches!(
        get("/yealink/1001/a/b"),
        Err(RequestError::Malformed(_))
    ));
    assert!(matches!(
        get("/yealink?user=1001"),
        Err(RequestError::Malformed(_))
    ));
    assert_eq!(
        get("/yealink/1001/dance"),
        Err(RequestError::UnknownEvent("dance".into()))
    );
    assert!(matches!(
        get("/yealink/1001/off_hook?seq=soon"),
        Err(RequestError::Malformed(_))
    ));
    assert!(matches!(
        parse("DELETE", "/yealink/1001/off_hook", None),
        Err(RequestError::Method(_))
    ));
    assert!(parse("POST", "/yealink/1001/off_hook", None).is_ok());
    let long = format!("/yealink/1001/off_hook?remote={}", "1".repeat(MAX_TARGET));
    assert_eq!(get(&long), Err(RequestError::TooLong));
    let long_value = format!("/yealink/1001/off_hook?remote={}", "1".repeat(600));
    assert!(matches!(get(&long_value), Err(RequestError::Malformed(_))));
}

#[test]
fn path_segments_are_percent_decoded_and_snom_ampersands_dropped() {
    let e = get("/snom/1001&/action_offhook_url").unwrap();
    assert_eq!(e.user, "1001");
    let e = get("/phone/a+b%40c.d/off_hook").unwrap();
    assert_eq!(e.user, "a+b@c.d");
    // Broken escapes are kept as they are, not a panic.
    let e = get("/phone/%zz%4/off_hook").unwrap();
    assert_eq!(e.user, "%zz%4");
}

#[test]
fn remote_party_forms() {
    let p = |r: &str| party(r, None).map(|p| (p.number, p.name));
    assert_eq!(p("1002"), Some(("1002".into(), None)));
    assert_eq!(p("sips:1002@pbx:5061"), Some(("1002".into(), None)));
    assert_eq!(
        p("tel:+4930123;phone-context=x"),
        Some(("+4930123".into(), None))
    );
    assert_eq!(
        p("\"Bob\" <sip:1002@pbx>"),
        Some(("1002".into(), Some("Bob".into())))
    );
    assert_eq!(p(""), None);
    assert_eq!(p("$remote"), None);
    assert_eq!(p("<>"), None);
}

/// A tiny generator (xorshift): the same cases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_input_never_panics() {
    let alphabet: Vec<char> = "/?&=%$+@;:<>\"' aZ09_-.\u{e9}\u{1F600}\0".chars().collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut tracker = super::super::tracker::Tracker::new();
    for _ in 0..20_000 {
        let len = (rng.next() % 80) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
            .collect();
        let prefixes = [
            "",
            "/yealink/1001/",
            "/sip/",
            "/phone?user=1&event=",
            "/snom/",
        ];
        let target = format!("{}{text}", prefixes[(rng.next() % 5) as usize]);
        if let Ok(event) = get(&target) {
            let _ = tracker.apply(&event.user, &event);
        }
        let _ = parse(&text, &text, Some(&text));
        let _ = party(&text, Some(text.clone()));
    }
}
