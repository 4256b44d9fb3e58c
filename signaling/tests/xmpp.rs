//! The XMPP server over real loopback TCP connections, with the control plane's store
//! behind it: negotiation, routing, offline delivery, rooms, markers and bad input.

mod common;

use std::sync::Arc;

use common::{extra, Client, Server, MAX_STANZA};
use minidom::Element;
use signaling::core::framing::{StreamEvent, NS_CLIENT};
use signaling::XmppConfig;

#[tokio::test]
async fn login_with_token_or_password_and_bad_credentials_fail() {
    let server = Server::start().await;
    let alice = server.user("alice").await;
    let token = server.token("alice").await;
    let client = server.client(alice, &token).await;
    assert_eq!(client.jid, format!("{}/test", server.jid(alice)));
    server.client(alice, "alice-password").await;

    let mut wrong = Client::connect(server.addr).await;
    wrong.open().await;
    let node = format!("{}-{}", alice.0, server.app.id.0);
    assert!(!wrong.authenticate(&node, "wrong").await);
    assert!(!wrong.authenticate(&node, "wrong").await);
    assert!(!wrong.authenticate(&node, "wrong").await);
    // Three strikes close the stream.
    loop {
        match wrong.next().await {
            None | Some(StreamEvent::Close) => break,
            Some(_) => continue,
        }
    }
    let mut other_app = Client::connect(server.addr).await;
    other_app.open().await;
    assert!(
        !other_app
            .authenticate(&format!("{}-999", alice.0), &token)
            .await
    );
}

#[tokio::test]
async fn stanzas_before_authentication_end_the_stream() {
    let server = Server::start().await;
    let mut client = Client::connect(server.addr).await;
    client.open().await;
    client
        .send("<message to='1-1@localhost'><body>hi</body></message>")
        .await;
    let error = client.until("error").await;
    assert!(error
        .get_child("not-authorized", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());
}

#[tokio::test]
async fn private_messages_route_with_their_id_and_land_in_history() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client(alice, "alice-password").await;
    let mut b = server.client(bob, "bob-password").await;
    let id = "6b051f5767de101fc1000000";
    a.send(&format!(
        "<message to='{}' type='chat' id='{id}'><body>hello</body><markable xmlns='urn:xmpp:chat-markers:0'/>\
         <extraParams xmlns='jabber:client'><save_to_history>1</save_to_history><custom_key>v</custom_key></extraParams></message>",
        server.jid(bob)
    ))
    .await;
    let got = b.until("message").await;
    assert_eq!(got.attr("id"), Some(id));
    assert_eq!(got.attr("from"), Some(a.jid.as_str()));
    assert_eq!(got.get_child("body", NS_CLIENT).unwrap().text(), "hello");
    assert_eq!(extra(&got, "custom_key").as_deref(), Some("v"));
    let dialog_id = extra(&got, "dialog_id").expect("server adds dialog_id");
    assert!(extra(&got, "date_sent").unwrap().parse::<i64>().is_ok());

    let dialog = server
        .control
        .dialog_for_user(server.app.id, bob, &dialog_id)
        .await
        .unwrap();
    assert_eq!(dialog.last_message.as_deref(), Some("hello"));
    assert_eq!(dialog.last_message_id.as_deref(), Some(id));

    // Bob's displayed marker marks it read.
    b.send(&format!(
        "<message to='{}' type='chat' id='m2'><displayed xmlns='urn:xmpp:chat-markers:0' id='{id}'/>\
         <extraParams xmlns='jabber:client'><dialog_id>{dialog_id}</dialog_id></extraParams></message>",
        server.jid(alice)
    ))
    .await;
    let marker = a.until("message").await;
    assert!(marker
        .get_child("displayed", "urn:xmpp:chat-markers:0")
        .is_some());
}

#[tokio::test]
async fn messages_to_offline_users_wait_for_their_next_login() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client(alice, "alice-password").await;
    a.send(&format!(
        "<message to='{}' type='chat' id='6b051f5767de101fc1000001'><body>while you were out</body>\
         <extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>",
        server.jid(bob)
    ))
    .await;
    // A ping round trip proves the message was handled before Bob logs in.
    a.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert_eq!(a.until("iq").await.attr("id"), Some("p1"));

    let mut b = server.client(bob, "bob-password").await;
    let got = b.until("message").await;
    assert_eq!(
        got.get_child("body", NS_CLIENT).unwrap().text(),
        "while you were out"
    );
    assert!(got.get_child("delay", "urn:xmpp:delay").is_some());
}

#[tokio::test]
async fn messages_to_other_apps_or_domains_are_refused() {
    let server = Server::start().await;
    let alice = server.user("alice").await;
    let mut a = server.client(alice, "alice-password").await;
    a.send("<message to='5-999@localhost' type='chat' id='x1'><body>hi</body></message>")
        .await;
    let error = a.until("message").await;
    assert_eq!(error.attr("type"), Some("error"));
    assert_eq!(error.attr("id"), Some("x1"));
    a.send("<message to='someone@elsewhere.example' type='chat' id='x2'><body>hi</body></message>")
        .await;
    let error = a.until("message").await;
    assert_eq!(error.attr("id"), Some("x2"));
    assert_eq!(error.attr("type"), Some("error"));
}

#[tokio::test]
async fn malformed_xml_closes_only_that_stream() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client(alice, "alice-password").await;
    let mut b = server.client(bob, "bob-password").await;

    let mut bad = server.client(alice, "alice-password").await;
    bad.send("<message><body>unbalanced</iq>").await;
    let error = bad.until("error").await;
    assert!(error
        .get_child("not-well-formed", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());

    let mut big = server.client(alice, "alice-password").await;
    big.send(&format!(
        "<message to='{}'><body>{}</body></message>",
        server.jid(bob),
        "x".repeat(MAX_STANZA * 2)
    ))
    .await;
    let error = big.until("error").await;
    assert!(error
        .get_child("policy-violation", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());

    let mut bomb = Client::connect(server.addr).await;
    bomb.send("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>").await;
    // The server opens its side (RFC 6120 §4.9.1.1) only to report the error.
    let error = bomb.until("error").await;
    assert!(error
        .get_child("not-well-formed", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());

    // The others still talk.
    a.send(&format!("<message to='{}' type='chat' id='6b051f5767de101fc1000009'><body>still here</body></message>", server.jid(bob))).await;
    assert_eq!(
        b.until("message")
            .await
            .get_child("body", NS_CLIENT)
            .unwrap()
            .text(),
        "still here"
    );
}

#[tokio::test]
async fn group_dialogs_are_rooms_for_their_occupants_only() {
    use control_api::domain::chat::{DialogType, NewDialog};
    let server = Server::start().await;
    let (alice, bob, eve) = (
        server.user("alice").await,
        server.user("bob").await,
        server.user("eve").await,
    );
    let new = NewDialog {
        kind: DialogType::Group,
        occupants: vec![bob],
        name: Some("team".into()),
        photo: None,
        data: None,
        is_join_required: None,
    };
    let (dialog, _) = server
        .control
        .create_dialog(server.app.id, alice, new)
        .await
        .unwrap();
    let room = format!("{}_{}@muc.localhost", server.app.id.0, dialog.id);
    let mut a = server.client(alice, "alice-password").await;
    let mut b = server.client(bob, "bob-password").await;
    let mut e = server.client(eve, "eve-password").await;

    a.send(&format!("<presence id='j1' to='{room}/{}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>", alice.0)).await;
    let joined = a.until("presence").await;
    assert_eq!(joined.attr("id"), Some("j1"));
    assert_eq!(
        joined.attr("from"),
        Some(format!("{room}/{}", alice.0).as_str())
    );

    b.send(&format!(
        "<presence id='j2' to='{room}/{}'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
        bob.0
    ))
    .await;
    // Bob first sees Alice already there, then his own presence with the same id.
    let first = b.until("presence").await;
    assert_eq!(
        first.attr("from"),
        Some(format!("{room}/{}", alice.0).as_str())
    );
    let own = b.until("presence").await;
    assert_eq!(own.attr("id"), Some("j2"));
    // A standard join (no maxstanzas='0') ends with the room subject, the dialog name.
    let subject = b.until("message").await;
    assert_eq!(
        subject
            .get_child("subject", NS_CLIENT)
            .map(Element::text)
            .as_deref(),
        Some("team")
    );
    // Alice is told Bob joined.
    let bob_joined = a.until("presence").await;
    assert_eq!(
        bob_joined.attr("from"),
        Some(format!("{room}/{}", bob.0).as_str())
    );
    // The QuickBlox Node SDK throws on a room presence without an id.
    assert!(bob_joined.attr("id").is_some_and(|id| !id.is_empty()));

    // Eve is no occupant: refused with the join's id.
    e.send(&format!(
        "<presence id='j3' to='{room}/{}'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
        eve.0
    ))
    .await;
    let refused = e.until("presence").await;
    assert_eq!(refused.attr("type"), Some("error"));
    assert_eq!(refused.attr("id"), Some("j3"));
    e.send(&format!("<message to='{room}' type='groupchat' id='6b051f5767de101fc100000e'><body>let me in</body></message>")).await;
    assert_eq!(e.until("message").await.attr("type"), Some("error"));

    a.send(&format!(
        "<message to='{room}' type='groupchat' id='6b051f5767de101fc100000a'><body>hi team</body>\
         <extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams></message>"
    ))
    .await;
    for client in [&mut a, &mut b] {
        let got = client.until("message").await;
        assert_eq!(got.attr("type"), Some("groupchat"));
        assert_eq!(
            got.attr("from"),
            Some(format!("{room}/{}", alice.0).as_str())
        );
        assert_eq!(
            extra(&got, "dialog_id").as_deref(),
            Some(dialog.id.as_str())
        );
    }
    let stored = server
        .control
        .dialog_for_user(server.app.id, bob, &dialog.id)
        .await
        .unwrap();
    assert_eq!(stored.last_message.as_deref(), Some("hi team"));

    b.send(&format!(
        "<presence type='unavailable' to='{room}/{}'/>",
        bob.0
    ))
    .await;
    let left = a.until("presence").await;
    assert_eq!(left.attr("type"), Some("unavailable"));
    assert_eq!(
        left.attr("from"),
        Some(format!("{room}/{}", bob.0).as_str())
    );

    // Joining again without maxstanzas='0' brings the room history, marked as delayed.
    b.send(&format!(
        "<presence id='j4' to='{room}/{}'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
        bob.0
    ))
    .await;
    let history = loop {
        let message = b.until("message").await;
        if message.get_child("body", NS_CLIENT).is_some() {
            break message;
        }
    };
    assert_eq!(
        history.get_child("body", NS_CLIENT).unwrap().text(),
        "hi team"
    );
    assert!(history.get_child("delay", "urn:xmpp:delay").is_some());
    assert_eq!(
        history.attr("from"),
        Some(format!("{room}/{}", alice.0).as_str())
    );
}

/// A public dialog (type 1) is a room anyone in the application may join and post to,
/// occupant or not.
#[tokio::test]
async fn public_dialogs_are_rooms_for_anyone_in_the_app() {
    use control_api::domain::chat::{DialogType, NewDialog};
    let server = Server::start().await;
    let (alice, eve) = (server.user("alice").await, server.user("eve").await);
    let new = NewDialog {
        kind: DialogType::Public,
        occupants: vec![],
        name: Some("lobby".into()),
        photo: None,
        data: None,
        is_join_required: None,
    };
    let (dialog, _) = server
        .control
        .create_dialog(server.app.id, alice, new)
        .await
        .unwrap();
    let room = format!("{}_{}@muc.localhost", server.app.id.0, dialog.id);
    let mut a = server.client(alice, "alice-password").await;
    let mut e = server.client(eve, "eve-password").await;
    for (client, user, id) in [(&mut a, alice, "j1"), (&mut e, eve, "j2")] {
        client.send(&format!("<presence id='{id}' to='{room}/{}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>", user.0)).await;
        // Joined (not refused): her own presence comes back with the join's id.
        let own = loop {
            let p = client.until("presence").await;
            if p.attr("id") == Some(id) {
                break p;
            }
        };
        assert_ne!(own.attr("type"), Some("error"));
    }
    // Eve, no occupant, posts; both receive it with the dialog id.
    e.send(&format!(
        "<message to='{room}' type='groupchat' id='6b051f5767de101fc10000f1'><body>hello lobby</body></message>"
    ))
    .await;
    for client in [&mut a, &mut e] {
        let got = client.until("message").await;
        assert_eq!(got.attr("type"), Some("groupchat"));
        assert_eq!(got.attr("from"), Some(format!("{room}/{}", eve.0).as_str()));
        assert_eq!(
            got.get_child("body", NS_CLIENT)
                .map(Element::text)
                .as_deref(),
            Some("hello lobby")
        );
        assert_eq!(
            extra(&got, "dialog_id").as_deref(),
            Some(dialog.id.as_str())
        );
    }
}

#[tokio::test]
async fn carbons_copy_sent_messages_to_the_senders_other_resources() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut phone = server.client(alice, "alice-password").await;
    let mut laptop = server.client(alice, "alice-password").await;
    let mut b = server.client(bob, "bob-password").await;
    laptop
        .send("<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await;
    assert_eq!(laptop.until("iq").await.attr("type"), Some("result"));

    phone
        .send(&format!(
            "<message to='{}' type='chat' id='6b051f5767de101fc10000c1'><body>from my phone</body></message>",
            server.jid(bob)
        ))
        .await;
    assert_eq!(
        b.until("message")
            .await
            .get_child("body", NS_CLIENT)
            .unwrap()
            .text(),
        "from my phone"
    );
    let carbon = laptop.until("message").await;
    let sent = carbon
        .get_child("sent", "urn:xmpp:carbons:2")
        .expect("a <sent/> carbon");
    let copy = sent
        .get_child("forwarded", "urn:xmpp:forward:0")
        .and_then(|f| f.get_child("message", NS_CLIENT))
        .expect("the forwarded message");
    assert_eq!(
        copy.get_child("body", NS_CLIENT).unwrap().text(),
        "from my phone"
    );
    assert_eq!(carbon.attr("from"), Some(server.jid(alice).as_str()));
}

#[tokio::test]
async fn floods_end_the_stream_with_policy_violation() {
    // No refill at all: exactly the burst is allowed, whatever the timing.
    let server = Server::start_with(XmppConfig {
        stanza_rate: 0,
        stanza_burst: 8,
        ..XmppConfig::default()
    })
    .await;
    let alice = server.user("alice").await;
    // Binding and the roster take 2 stanzas, initial presence 1.
    let mut a = server.client(alice, "alice-password").await;
    let pings: String = (0..10)
        .map(|i| format!("<iq type='get' id='p{i}'><ping xmlns='urn:xmpp:ping'/></iq>"))
        .collect();
    a.send(&pings).await;
    let error = a.until("error").await;
    assert!(error
        .get_child("policy-violation", "urn:ietf:params:xml:ns:xmpp-streams")
        .is_some());
}

fn test_certificate() -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = generated.cert.der().clone();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(generated.key_pair.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    (Arc::new(server), roots)
}

#[tokio::test]
async fn starttls_upgrades_the_stream_and_can_be_required() {
    let (tls, roots) = test_certificate();
    let server = Server::start_with(XmppConfig {
        tls: Some(tls),
        require_tls: true,
        ..XmppConfig::default()
    })
    .await;
    let alice = server.user("alice").await;
    let node = format!("{}-{}", alice.0, server.app.id.0);

    // Without TLS, authentication is refused.
    let mut plain = Client::connect(server.addr).await;
    plain.open().await;
    assert!(!plain.authenticate(&node, "alice-password").await);

    let mut client = Client::connect(server.addr).await;
    client.open().await;
    client
        .send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    assert_eq!(
        client.until("proceed").await.ns(),
        "urn:ietf:params:xml:ns:xmpp-tls"
    );
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = std::mem::replace(&mut client.stream, Box::new(tokio::io::duplex(1).0));
    let tls_stream = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake with the server's certificate");
    client.stream = Box::new(tls_stream);
    client.open().await;
    assert!(client.authenticate(&node, "alice-password").await);
    client.open().await;
    client.bind("test").await;
    assert_eq!(client.jid, format!("{}/test", server.jid(alice)));
}

#[tokio::test]
async fn a_dropped_stream_resumes_and_gets_what_it_missed() {
    let server = Server::start().await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let mut a = server.client(alice, "alice-password").await;
    let mut b = server.client(bob, "bob-password").await;
    b.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = b.until("enabled").await;
    assert_eq!(enabled.attr("resume"), Some("true"));
    let previd = enabled.attr("id").expect("a resumption id").to_string();

    let message = |n: u32, body: &str| {
        format!(
            "<message to='{}' type='chat' id='6b051f5767de101fc10001{n:02}'><body>{body}</body></message>",
            server.jid(bob)
        )
    };
    a.send(&message(1, "one")).await;
    assert_eq!(
        b.until("message")
            .await
            .get_child("body", NS_CLIENT)
            .unwrap()
            .text(),
        "one"
    );
    // Bob acknowledges the first stanza only, then his connection vanishes (no </stream>).
    b.send("<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
    b.send("<r xmlns='urn:xmpp:sm:3'/>").await;
    b.until("a").await;
    drop(b);
    a.send(&message(2, "two")).await;

    // A new connection resumes: the server takes the session over whether or not it has
    // noticed the old connection is gone.
    let mut again = Client::connect(server.addr).await;
    again.open().await;
    assert!(
        again
            .authenticate(&format!("{}-{}", bob.0, server.app.id.0), "bob-password")
            .await
    );
    again.open().await;
    again
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='1'/>"
        ))
        .await;
    let resumed = again.until("resumed").await;
    assert_eq!(resumed.attr("previd"), Some(previd.as_str()));
    let replayed = again.until("message").await;
    assert_eq!(replayed.get_child("body", NS_CLIENT).unwrap().text(), "two");
    // Still bound under the old resource: routing reaches the resumed stream.
    a.send(&message(3, "three")).await;
    assert_eq!(
        again
            .until("message")
            .await
            .get_child("body", NS_CLIENT)
            .unwrap()
            .text(),
        "three"
    );

    // An unknown or foreign id fails cleanly.
    let mut stranger = Client::connect(server.addr).await;
    stranger.open().await;
    assert!(
        stranger
            .authenticate(
                &format!("{}-{}", alice.0, server.app.id.0),
                "alice-password"
            )
            .await
    );
    stranger.open().await;
    stranger
        .send(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
        ))
        .await;
    assert!(stranger.until("failed").await.has_ns("urn:xmpp:sm:3"));
}

#[tokio::test]
async fn presence_goes_between_private_dialog_peers_only() {
    let server = Server::start().await;
    let (alice, bob, eve) = (
        server.user("alice").await,
        server.user("bob").await,
        server.user("eve").await,
    );
    // A private dialog makes Alice and Bob contacts; Eve shares none with Alice.
    server
        .control
        .private_dialog(server.app.id, alice, bob)
        .await
        .unwrap();
    let mut b = server.client_on(bob, "phone").await;
    let mut e = server.client_on(eve, "web").await;
    // Their initial presence (sent by the harness) handled before Alice comes.
    for client in [&mut b, &mut e] {
        client
            .send("<iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>")
            .await;
        assert_eq!(client.until("iq").await.attr("id"), Some("p0"));
    }

    // The harness sends Alice's initial presence.
    let mut a = server.client_on(alice, "laptop").await;
    // Alice learns Bob is online...
    let bobs = a.until("presence").await;
    assert_eq!(
        bobs.attr("from"),
        Some(format!("{}/phone", server.jid(bob)).as_str())
    );
    // ...and Bob that Alice is.
    let alices = b.until("presence").await;
    assert_eq!(
        alices.attr("from"),
        Some(format!("{}/laptop", server.jid(alice)).as_str())
    );
    assert_eq!(alices.attr("type"), None);
    // A status update reaches Bob as Alice sent it.
    a.send("<presence><status>at work</status></presence>")
        .await;
    let alices = b.until("presence").await;
    assert_eq!(
        alices.get_child("status", NS_CLIENT).map(|s| s.text()),
        Some("at work".to_string()),
        "{}",
        String::from(&alices)
    );
    // Eve got nothing: her ping's answer is the first thing she reads.
    e.send("<iq type='get' id='e1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let first = e.until_any().await;
    assert_eq!((first.name(), first.attr("id")), ("iq", Some("e1")));

    // Alice leaves: Bob is told.
    drop(a);
    let gone = b.until("presence").await;
    assert_eq!(gone.attr("type"), Some("unavailable"));
    assert_eq!(
        gone.attr("from"),
        Some(format!("{}/laptop", server.jid(alice)).as_str())
    );
}
