"""slixmpp, a standard XMPP client, against Switchboard's XMPP over TCP."""

import asyncio
import xml.etree.ElementTree as ET

import slixmpp

# Guards against a hung exchange only; nothing is asserted about time.
LIMIT_S = 20


class Client(slixmpp.ClientXMPP):
    def __init__(self, user: dict) -> None:
        super().__init__(user["jid"], user["password"])
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0045")
        self.register_plugin("xep_0184")
        self.register_plugin("xep_0199")
        # The test server offers no STARTTLS; plain PLAIN is fine on loopback.
        self.enable_starttls = False
        self.enable_direct_tls = False
        self.enable_plaintext = True
        self.plugin["feature_mechanisms"].unencrypted_plain = True
        self.messages: asyncio.Queue = asyncio.Queue()
        self.receipts: asyncio.Queue = asyncio.Queue()
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("groupchat_message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("receipt_received", lambda m: self.receipts.put_nowait(m))

    async def start(self, address) -> None:
        self.connect(*address)
        await asyncio.wait_for(self.wait_until("session_start"), LIMIT_S)
        self.send_presence()
        await self.get_roster()


def extra(message, key: str) -> str | None:
    node = message.xml.find("{jabber:client}extraParams")
    child = node.find(f"{{jabber:client}}{key}") if node is not None else None
    return child.text if child is not None else None


def test_private_message_with_receipt_lands_in_history(server):
    alice, bob = server.sign_up("alice"), server.sign_up("bob")

    async def scenario():
        a, b = Client(alice), Client(bob)
        await a.start(server.xmpp)
        await b.start(server.xmpp)
        message = a.make_message(mto=bob["jid"], mbody="hello from slixmpp", mtype="chat")
        message["id"] = "6b051f5767de101fc1000abc"
        message["request_receipt"] = True
        message.append(ET.fromstring("<extraParams xmlns='jabber:client'><save_to_history>1</save_to_history></extraParams>"))
        message.send()
        got = await asyncio.wait_for(b.messages.get(), LIMIT_S)
        assert got["body"] == "hello from slixmpp"
        assert got["id"] == "6b051f5767de101fc1000abc"
        assert got["from"].bare == alice["jid"]
        receipt = await asyncio.wait_for(a.receipts.get(), LIMIT_S)
        assert receipt["receipt"] == "6b051f5767de101fc1000abc"
        dialog_id = extra(got, "dialog_id")
        a.disconnect()
        b.disconnect()
        return dialog_id

    dialog_id = asyncio.run(scenario())
    assert dialog_id, "the server adds dialog_id to extraParams"
    token = server.session("bob", bob["password"])["token"]
    history = server.rest("GET", f"/chat/Message.json?chat_dialog_id={dialog_id}", token)
    assert [m["message"] for m in history["items"]] == ["hello from slixmpp"]
    # Bob's client acknowledged it (XEP-0184): the server marked it delivered to him.
    assert bob["id"] in history["items"][0]["delivered_ids"]


def test_group_dialog_room_join_and_message(server):
    alice, bob = server.sign_up("alice"), server.sign_up("bob")
    token = server.session("alice", alice["password"])["token"]
    dialog = server.rest("POST", "/chat/Dialog.json", token,
                         {"type": "2", "name": "team", "occupants_ids": str(bob["id"])})
    room = dialog["xmpp_room_jid"]
    assert room == f"{server.app['id']}_{dialog['_id']}@muc.localhost"

    async def scenario():
        a, b = Client(alice), Client(bob)
        await a.start(server.xmpp)
        await b.start(server.xmpp)
        await asyncio.wait_for(a.plugin["xep_0045"].join_muc_wait(room, str(alice["id"])), LIMIT_S)
        await asyncio.wait_for(b.plugin["xep_0045"].join_muc_wait(room, str(bob["id"])), LIMIT_S)
        a.send_message(mto=room, mbody="hello team", mtype="groupchat")
        for client in (a, b):
            got = await asyncio.wait_for(client.messages.get(), LIMIT_S)
            while got["type"] != "groupchat":
                got = await asyncio.wait_for(client.messages.get(), LIMIT_S)
            assert got["body"] == "hello team"
            assert got["from"].resource == str(alice["id"])
        a.disconnect()
        b.disconnect()

    asyncio.run(scenario())


def test_wrong_password_is_refused(server):
    alice = server.sign_up("alice")

    async def scenario():
        client = Client({**alice, "password": "wrong-password"})
        failed = asyncio.get_running_loop().create_future()
        client.add_event_handler("failed_all_auth", lambda _: failed.done() or failed.set_result(True))
        client.connect(*server.xmpp)
        assert await asyncio.wait_for(failed, LIMIT_S)
        client.disconnect()

    asyncio.run(scenario())
