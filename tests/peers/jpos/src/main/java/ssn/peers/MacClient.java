package ssn.peers;

import java.io.IOException;
import java.io.Writer;
import java.security.GeneralSecurityException;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import javax.crypto.Cipher;
import javax.crypto.spec.SecretKeySpec;

import org.jpos.core.SimpleConfiguration;
import org.jpos.iso.BaseChannel;
import org.jpos.iso.ISOChannel;
import org.jpos.iso.ISOException;
import org.jpos.iso.ISOMsg;
import org.jpos.iso.ISOPackager;
import org.jpos.iso.ISOUtil;
import org.jpos.iso.RawIncomingFilter;
import org.jpos.iso.channel.ASCIIChannel;
import org.jpos.iso.channel.NACChannel;
import org.jpos.iso.packager.ISO87APackager;
import org.jpos.iso.packager.ISO87BPackager;
import org.jpos.security.SMAdapter;
import org.jpos.security.SMException;
import org.jpos.security.SecureDESKey;
import org.jpos.security.jceadapter.JCESecurityModule;
import org.jpos.util.LogEvent;

/**
 * A terminal that MACs its messages (host interface section 10), for the switch's differential
 * test: every MAC here is jPOS's, {@code JCESecurityModule.generateCBC_MAC} with the
 * BouncyCastle {@code ISO9797ALG3MAC} algorithm (ISO 9797-1 MAC algorithm 3, padding method 1),
 * and every key change is opened with jPOS's {@code importKey} under the TMK.
 *
 * <pre>
 *   Peer mac-client bcd|ascii HOST:PORT MANIFEST_JSON
 * </pre>
 *
 * The MAC input is what a jPOS terminal MACs: the MAC field (DE64, or DE128 when a field above
 * 64 is present) set to 8 zero bytes, the message packed by its packager ({@code
 * ISO87BPackager} on {@code bcd}, {@code ISO87APackager} on {@code ascii}: MTI, bitmaps and
 * fields, no length header, no TPDU), less the MAC field's 8 bytes ({@code bcd}) or 16 hex
 * characters ({@code ascii}) at its end. An answer's MAC is checked over the bytes as received
 * (a {@link RawIncomingFilter}), not over a re-packing.
 *
 * With the manifest's terminal that has a {@code tak} and its first regular card it runs: a
 * MACed sign-on and purchase (answered {@code 00} with a MAC that verifies); the purchase with
 * one byte of its amount changed after MACing ({@code 63}, no MAC); a MACed key change (DE48:
 * the new TPK and TAK under the TMK, each with its check value, opened by jPOS); a purchase
 * under the new keys ({@code 00}, answer MAC under the new TAK); and one MACed with the old TAK
 * ({@code 63}). One JSON line per answer; exit status 1 on any unexpected answer.
 */
final class MacClient {
    private static final int ANSWER_TIMEOUT_MS = 30_000;
    private static final byte[] TPDU = {0x60, 0x00, 0x01, 0x00, 0x00};
    private static final DateTimeFormatter LOCAL_TIME = DateTimeFormatter.ofPattern("HHmmss", Locale.ROOT);
    private static final DateTimeFormatter LOCAL_DATE = DateTimeFormatter.ofPattern("MMdd", Locale.ROOT);
    private static final int KEY_HEX = 32;
    private static final int CHECK_VALUE_HEX = 6;

    private final BaseChannel channel;
    private final ISOPackager packager;
    /** Bytes of the 8-byte MAC field at the end of a packed message: 8 binary, or 16 hex. */
    private final int macWireBytes;
    private final Writer out;
    private final JCESecurityModule sm;
    private final RawImage raw;
    private final String terminalId;
    private final String merchantId;
    private final String pan;
    private final String expiry;
    private final String pin;
    private final SecureDESKey tmk;
    private final String tmkHex;
    private String tpkHex;
    private SecureDESKey tak;
    private int stan;

    /** Keeps the image of the last message received, as the channel read it. */
    private static final class RawImage implements RawIncomingFilter {
        byte[] image;

        @Override
        public ISOMsg filter(ISOChannel channel, ISOMsg m, byte[] header, byte[] image, LogEvent evt) {
            this.image = image;
            return m;
        }

        @Override
        public ISOMsg filter(ISOChannel channel, ISOMsg m, LogEvent evt) {
            return m;
        }
    }

    /** An answer the contract does not allow here. */
    private static final class UnexpectedAnswer extends Exception {
        private static final long serialVersionUID = 1L;

        UnexpectedAnswer(String message) {
            super(message);
        }
    }

    private MacClient(BaseChannel channel, ISOPackager packager, int macWireBytes, Writer out,
            JCESecurityModule sm, RawImage raw, Map<String, Object> terminal, Map<String, Object> card)
            throws SMException {
        this.channel = channel;
        this.packager = packager;
        this.macWireBytes = macWireBytes;
        this.out = out;
        this.sm = sm;
        this.raw = raw;
        this.terminalId = (String) terminal.get("terminal_id");
        this.merchantId = (String) terminal.get("merchant_id");
        this.tpkHex = (String) terminal.get("tpk");
        this.tmkHex = (String) terminal.get("tmk");
        this.tmk = sm.formKEYfromClearComponents(SMAdapter.LENGTH_DES3_2KEY, SMAdapter.TYPE_TMK,
                (String) terminal.get("tmk"));
        this.tak = sm.formKEYfromClearComponents(SMAdapter.LENGTH_DES3_2KEY, SMAdapter.TYPE_TAK,
                (String) terminal.get("tak"));
        this.pan = (String) card.get("pan");
        this.expiry = (String) card.get("expiry");
        this.pin = (String) card.get("pin");
    }

    static int run(String[] args, Writer out) throws IOException {
        if (args.length != 4 || !(args[1].equals("bcd") || args[1].equals("ascii"))) {
            throw new Peer.UsageException("mac-client takes bcd|ascii HOST:PORT MANIFEST_JSON");
        }
        boolean bcd = args[1].equals("bcd");
        String host = Client.host(args[2]);
        int port = Client.port(args[2]);
        Map<String, Object> manifest = Client.manifest(args[3]);
        Map<String, Object> card = Client.firstRegularCard(manifest);
        Map<String, Object> terminal = null;
        for (Object t : (List<?>) manifest.get("terminals")) {
            if (((Map<?, ?>) t).get("tak") != null) {
                terminal = Client.cast(t);
                break;
            }
        }
        if (terminal == null) {
            throw new Peer.UsageException("the manifest has no terminal with a tak");
        }

        ISOPackager packager = bcd ? new ISO87BPackager() : new ISO87APackager();
        BaseChannel channel = bcd
                ? new NACChannel(host, port, packager, TPDU)
                : new ASCIIChannel(host, port, packager);
        channel.setTimeout(ANSWER_TIMEOUT_MS);
        RawImage raw = new RawImage();
        channel.addIncomingFilter(raw);
        int macWireBytes = bcd ? 8 : 16;
        Map<String, Object> tak = terminal;
        return Client.converse(channel, args[2], out, () -> new MacClient(
                channel, packager, macWireBytes, out, securityModule(), raw, tak, card).conversation());
    }

    /**
     * jPOS's software security module with a fresh local master key (in memory only), the
     * BouncyCastle provider, and the retail MAC with zero padding as its CBC MAC.
     */
    private static JCESecurityModule securityModule() throws SMException {
        SimpleConfiguration cfg = new SimpleConfiguration();
        cfg.put("provider", "org.bouncycastle.jce.provider.BouncyCastleProvider");
        cfg.put("rebuildlmk", "true");
        cfg.put("cbc-mac", "ISO9797ALG3MAC");
        JCESecurityModule sm = new JCESecurityModule();
        try {
            sm.setConfiguration(cfg);
        } catch (org.jpos.core.ConfigurationException e) {
            throw new SMException(e);
        }
        return sm;
    }

    private void conversation()
            throws UnexpectedAnswer, IOException, ISOException, SMException, GeneralSecurityException {
        ISOMsg signOn = network("001");
        exchange("sign_on", signOn, tak, "00", true);

        ISOMsg purchase = purchase();
        exchange("purchase", purchase, tak, "00", true);

        // The same kind of purchase, MACed, then one byte of its packed amount changed.
        ISOMsg tampered = purchase();
        mac(tampered, tak);
        String amount = tampered.getString(4);
        tampered.set(4, amount.substring(0, 11) + (char) (amount.charAt(11) + 1));
        send("tampered", tampered, "63", false);

        ISOMsg keyChange = network("101");
        ISOMsg answer = exchange("key_change", keyChange, tak, "00", true);
        String de48 = answer.getString(48);
        int part = KEY_HEX + CHECK_VALUE_HEX;
        if (de48 == null || de48.length() != 2 * part) {
            throw new UnexpectedAnswer("key_change: DE48 is " + de48 + ", expected " + 2 * part + " characters");
        }
        open("TPK", SMAdapter.TYPE_TPK, de48.substring(0, part));
        SecureDESKey newTak = open("TAK", SMAdapter.TYPE_TAK, de48.substring(part));
        SecureDESKey oldTak = tak;
        tak = newTak;
        tpkHex = clearKey(de48.substring(0, part));

        exchange("purchase_new_keys", purchase(), tak, "00", true);
        ISOMsg stale = purchase();
        mac(stale, oldTak);
        send("purchase_old_tak", stale, "63", false);
    }

    /** A key of DE48 imported under the TMK, refused when its check value is not jPOS's. */
    private SecureDESKey open(String name, String type, String part) throws SMException, UnexpectedAnswer {
        byte[] encrypted = ISOUtil.hex2byte(part.substring(0, KEY_HEX));
        SecureDESKey key = sm.importKey(SMAdapter.LENGTH_DES3_2KEY, type, encrypted, tmk, false);
        String checkValue = ISOUtil.hexString(sm.generateKeyCheckValue(key)).substring(0, CHECK_VALUE_HEX);
        if (!checkValue.equalsIgnoreCase(part.substring(KEY_HEX))) {
            throw new UnexpectedAnswer("key_change: the " + name + "'s check value is " + part.substring(KEY_HEX)
                    + ", jPOS computes " + checkValue);
        }
        return key;
    }

    /**
     * A DE48 key in clear, for the plain-JCE PIN block of {@link Client#pinBlock}: 3DES ECB
     * decryption (K1 K2 K1) of each half under the clear TMK.
     */
    private String clearKey(String part) throws GeneralSecurityException {
        byte[] doubleLength = ISOUtil.hex2byte(tmkHex);
        byte[] key = Arrays.copyOf(doubleLength, 24);
        System.arraycopy(doubleLength, 0, key, 16, 8);
        Cipher cipher = Cipher.getInstance("DESede/ECB/NoPadding");
        cipher.init(Cipher.DECRYPT_MODE, new SecretKeySpec(key, "DESede"));
        byte[] clear = cipher.doFinal(ISOUtil.hex2byte(part.substring(0, KEY_HEX)));
        Arrays.fill(key, (byte) 0);
        return ISOUtil.hexString(clear);
    }

    private ISOMsg network(String code) throws ISOException {
        ISOMsg m = new ISOMsg("0800");
        m.set(7, Client.transmissionTime());
        m.set(11, nextStan());
        m.set(41, terminalId);
        m.set(70, code);
        return m;
    }

    private ISOMsg purchase() throws ISOException, GeneralSecurityException {
        LocalDateTime now = LocalDateTime.now();
        ISOMsg m = new ISOMsg("0200");
        m.set(2, pan);
        m.set(3, "000000");
        m.set(4, "000000100000");
        m.set(7, Client.transmissionTime());
        m.set(11, nextStan());
        m.set(12, LOCAL_TIME.format(now));
        m.set(13, LOCAL_DATE.format(now));
        m.set(14, expiry);
        m.set(22, "021");
        m.set(25, "00");
        m.set(41, terminalId);
        m.set(42, merchantId);
        m.set(49, "360");
        m.set(52, Client.pinBlock(pin, pan, tpkHex));
        return m;
    }

    /** DE128 when the message has a field above 64, DE64 otherwise. */
    private static int macField(ISOMsg m) {
        for (int i = 65; i <= 128; i++) {
            if (m.hasField(i)) {
                return 128;
            }
        }
        return 64;
    }

    /** Sets the MAC field to the message's MAC under {@code key}, computed by jPOS. */
    private void mac(ISOMsg m, SecureDESKey key) throws ISOException, SMException {
        int field = macField(m);
        m.set(field, new byte[8]);
        m.setPackager(packager);
        byte[] packed = m.pack();
        m.set(field, sm.generateCBC_MAC(Arrays.copyOf(packed, packed.length - macWireBytes), key));
    }

    /** MACs the request under {@code key} and sends it. */
    private ISOMsg exchange(String step, ISOMsg request, SecureDESKey key, String code, boolean answerMac)
            throws UnexpectedAnswer, IOException, ISOException, SMException {
        mac(request, key);
        return send(step, request, code, answerMac);
    }

    /**
     * Sends the request as it is, prints the answer as one JSON line with {@code "mac"}:
     * {@code "verified"} (under the current TAK), {@code "wrong"} or {@code "none"}, and
     * checks the MTI, DE11, DE41, DE39 and whether the answer carries a MAC that verifies.
     */
    private ISOMsg send(String step, ISOMsg request, String code, boolean answerMac)
            throws UnexpectedAnswer, IOException, ISOException, SMException {
        raw.image = null;
        channel.send(request);
        ISOMsg answer = channel.receive();
        String mac = macOf(answer);
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("step", step);
        line.put("mti", answer.getMTI());
        line.put("mac", mac);
        line.put("fields", Client.fieldsOf(answer));
        Peer.Json.write(out, line);
        out.write('\n');
        out.flush();

        String mti = request.getMTI();
        String answerMti = mti.substring(0, 2) + (char) (mti.charAt(2) + 1) + mti.substring(3);
        expect(step, "MTI", answer.getMTI(), answerMti);
        expect(step, "DE11", answer.getString(11), request.getString(11));
        expect(step, "DE41", answer.getString(41), request.getString(41));
        expect(step, "DE39", answer.getString(39), code);
        expect(step, "MAC", mac, answerMac ? "verified" : "none");
        return answer;
    }

    /** Whether the answer's MAC verifies under the current TAK, over the bytes received. */
    private String macOf(ISOMsg answer) throws SMException, UnexpectedAnswer {
        int field = macField(answer);
        if (!answer.hasField(field)) {
            return "none";
        }
        byte[] image = raw.image;
        if (image == null) {
            throw new UnexpectedAnswer("the channel passed no image of the answer");
        }
        byte[] expected = sm.generateCBC_MAC(Arrays.copyOf(image, image.length - macWireBytes), tak);
        return Arrays.equals(expected, answer.getBytes(field)) ? "verified" : "wrong";
    }

    private static void expect(String step, String what, String actual, String expected) throws UnexpectedAnswer {
        if (!expected.equals(actual)) {
            throw new UnexpectedAnswer(step + ": " + what + " is " + actual + ", expected " + expected);
        }
    }

    private String nextStan() {
        stan++;
        return String.format(Locale.ROOT, "%06d", 500_000 + stan);
    }
}
