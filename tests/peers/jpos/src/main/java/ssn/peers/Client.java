package ssn.peers;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import javax.crypto.Cipher;
import javax.crypto.spec.SecretKeySpec;

import org.jpos.iso.BaseChannel;
import org.jpos.iso.ISOBinaryField;
import org.jpos.iso.ISOComponent;
import org.jpos.iso.ISOException;
import org.jpos.iso.ISOMsg;
import org.jpos.iso.ISOUtil;
import org.jpos.iso.channel.NACChannel;
import org.jpos.iso.packager.ISO87BPackager;

/**
 * An EDC terminal on the switch's {@code bcd} port: jPOS {@code NACChannel} (2-byte length, then
 * the TPDU) with {@code ISO87BPackager}.
 *
 * <pre>
 *   Peer client HOST:PORT MANIFEST_JSON
 * </pre>
 *
 * With the first terminal and the first regular card of the demo manifest it runs sign-on,
 * purchase, balance inquiry, reversal of the purchase, balance inquiry and batch close, checks
 * every answer against the host interface contract, and prints one JSON line per answer:
 * {@code {"step": ..., "mti": ..., "tpdu": ..., "fields": {...}}}. Exit status 1 on any
 * unexpected answer, with the reason on stderr.
 */
final class Client {
    /** Every channel read ends by then, so a switch that stops answering fails the run. */
    private static final int ANSWER_TIMEOUT_MS = 30_000;
    /** Destination NII 0001, source NII 0000; the answer must carry them swapped. */
    private static final byte[] TPDU = {0x60, 0x00, 0x01, 0x00, 0x00};
    private static final byte[] TPDU_ANSWER = {0x60, 0x00, 0x00, 0x00, 0x01};
    /** Rp 10.000,00 in minor units (IDR exponent 2). */
    private static final long PURCHASE_AMOUNT = 1_000_000;
    /**
     * Rice and eggs, which the demo city's programs allow: category n2, quantity n2, amount n12
     * (contract section 4). The amounts add up to PURCHASE_AMOUNT.
     */
    private static final String[][] BASKET = {{"01", "02", "600000"}, {"02", "01", "400000"}};
    /** DE54: account type 00, amount type 02 (available), IDR, credit, then 12 digits. */
    private static final String BALANCE_PREFIX = "0002360C";
    private static final DateTimeFormatter TRANSMISSION = DateTimeFormatter.ofPattern("MMddHHmmss", Locale.ROOT);
    private static final DateTimeFormatter LOCAL_TIME = DateTimeFormatter.ofPattern("HHmmss", Locale.ROOT);
    private static final DateTimeFormatter LOCAL_DATE = DateTimeFormatter.ofPattern("MMdd", Locale.ROOT);

    private final NACChannel channel;
    private final Writer out;
    private final String terminalId;
    private final String merchantId;
    private final String tpk;
    private final String pan;
    private final String expiry;
    private final String pin;
    private int stan;

    private Client(NACChannel channel, Writer out, Map<String, Object> terminal, Map<String, Object> card) {
        this.channel = channel;
        this.out = out;
        this.terminalId = (String) terminal.get("terminal_id");
        this.merchantId = (String) terminal.get("merchant_id");
        this.tpk = (String) terminal.get("tpk");
        this.pan = (String) card.get("pan");
        this.expiry = (String) card.get("expiry");
        this.pin = (String) card.get("pin");
    }

    /** An answer the contract does not allow here. */
    private static final class UnexpectedAnswer extends Exception {
        private static final long serialVersionUID = 1L;

        UnexpectedAnswer(String message) {
            super(message);
        }
    }

    static int run(String[] args, Writer out) throws IOException {
        if (args.length != 3) {
            throw new Peer.UsageException("client takes HOST:PORT MANIFEST_JSON");
        }
        String host = host(args[1]);
        int port = port(args[1]);
        Map<String, Object> manifest = manifest(args[2]);
        Map<String, Object> terminal = objectAt(manifest, "terminals", 0);
        Map<String, Object> card = firstRegularCard(manifest);

        NACChannel channel = new NACChannel(host, port, new ISO87BPackager(), TPDU);
        channel.setTimeout(ANSWER_TIMEOUT_MS);
        return converse(channel, args[1], out, () -> new Client(channel, out, terminal, card).conversation());
    }

    /** A conversation over a connected channel. */
    interface Conversation {
        void run() throws Exception;
    }

    /**
     * Connects, runs the conversation and disconnects: exit status 0, or 1 with the reason on
     * stderr for an unexpected answer, a jPOS or crypto error, or a broken connection.
     */
    static int converse(BaseChannel channel, String address, Writer out, Conversation conversation)
            throws IOException {
        try {
            channel.connect();
            conversation.run();
            return 0;
        } catch (RuntimeException e) {
            throw e;
        } catch (IOException e) {
            out.flush();
            System.err.println("error: " + e.getClass().getSimpleName() + " with " + address + ": " + e.getMessage());
            return 1;
        } catch (Exception e) {
            out.flush();
            System.err.println("error: " + e.getClass().getSimpleName() + ": " + e.getMessage());
            return 1;
        } finally {
            channel.disconnect();
        }
    }

    /** The host of a HOST:PORT argument. */
    static String host(String address) {
        int colon = address.lastIndexOf(':');
        if (colon <= 0) {
            throw new Peer.UsageException(address + " is not HOST:PORT");
        }
        return address.substring(0, colon);
    }

    /** The port of a HOST:PORT argument. */
    static int port(String address) {
        try {
            return Integer.parseInt(address.substring(host(address).length() + 1));
        } catch (NumberFormatException e) {
            throw new Peer.UsageException(address + " is not HOST:PORT");
        }
    }

    /** The demo manifest (demo.json) at {@code path}. */
    static Map<String, Object> manifest(String path) throws IOException {
        return Peer.Json.parseObject(Files.readString(Path.of(path), StandardCharsets.UTF_8));
    }

    /** The manifest's first card of kind {@code regular}. */
    static Map<String, Object> firstRegularCard(Map<String, Object> manifest) {
        for (Object c : (List<?>) manifest.get("cards")) {
            if ("regular".equals(((Map<?, ?>) c).get("kind"))) {
                return cast(c);
            }
        }
        throw new Peer.UsageException("the manifest has no regular card");
    }

    private void conversation() throws UnexpectedAnswer, IOException, ISOException, GeneralSecurityException {
        ISOMsg signOn = new ISOMsg("0800");
        signOn.set(7, transmissionTime());
        signOn.set(11, nextStan());
        signOn.set(41, terminalId);
        signOn.set(70, "001");
        exchange("sign_on", signOn, "00");

        ISOMsg purchase = cardRequest("000000");
        purchase.set(4, String.format(Locale.ROOT, "%012d", PURCHASE_AMOUNT));
        StringBuilder basket = new StringBuilder(String.format(Locale.ROOT, "B1%02d", BASKET.length));
        long basketTotal = 0;
        for (String[] item : BASKET) {
            long amount = Long.parseLong(item[2]);
            basketTotal += amount;
            basket.append(item[0]).append(item[1]).append(String.format(Locale.ROOT, "%012d", amount));
        }
        if (basketTotal != PURCHASE_AMOUNT) {
            throw new IllegalStateException("the basket does not add up to the purchase amount");
        }
        purchase.set(48, basket.toString());
        ISOMsg answer = exchange("purchase", purchase, "00");
        expectLength("purchase", answer, 37, 12);
        expectLength("purchase", answer, 38, 6);
        long afterPurchase = balanceOf("purchase", answer);

        long balance = balanceOf("balance_inquiry", exchange("balance_inquiry", cardRequest("310000"), "00"));
        if (balance != afterPurchase) {
            throw new UnexpectedAnswer("balance_inquiry: balance " + balance + ", but the purchase left " + afterPurchase);
        }

        String original = "0200" + purchase.getString(11) + purchase.getString(7) + "0".repeat(22);
        ISOMsg reversal = new ISOMsg("0400");
        reversal.set(2, pan);
        reversal.set(3, "000000");
        reversal.set(4, purchase.getString(4));
        reversal.set(7, transmissionTime());
        reversal.set(11, nextStan());
        reversal.set(41, terminalId);
        reversal.set(42, merchantId);
        reversal.set(49, "360");
        reversal.set(90, original);
        answer = exchange("reversal", reversal, "00");
        if (!original.equals(answer.getString(90))) {
            throw new UnexpectedAnswer("reversal: DE90 is " + answer.getString(90) + ", expected " + original);
        }

        balance = balanceOf("balance_after_reversal", exchange("balance_after_reversal", cardRequest("310000"), "00"));
        if (balance != afterPurchase + PURCHASE_AMOUNT) {
            throw new UnexpectedAnswer("balance_after_reversal: balance " + balance + ", expected " + afterPurchase
                    + " + " + PURCHASE_AMOUNT + " back from the reversal");
        }

        // Sales are approved purchases not reversed (contract 3.5): the one purchase was
        // reversed, so no sales and one reversal of its amount.
        String totals = String.format(Locale.ROOT, "%03d%012d%03d%012d", 0, 0, 1, PURCHASE_AMOUNT);
        ISOMsg close = new ISOMsg("0500");
        close.set(3, "920000");
        close.set(7, transmissionTime());
        close.set(11, nextStan());
        close.set(41, terminalId);
        close.set(42, merchantId);
        close.set(60, "000001");
        close.set(63, totals);
        try {
            exchange("batch_close", close, "00");
        } catch (UnexpectedAnswer e) {
            throw new UnexpectedAnswer(e.getMessage() + " (terminal totals " + totals + ")");
        }
    }

    /** The fields a purchase and a balance inquiry share (contract 3.2, 3.3). */
    private ISOMsg cardRequest(String processingCode) throws ISOException, GeneralSecurityException {
        LocalDateTime now = LocalDateTime.now();
        ISOMsg m = new ISOMsg("0200");
        m.set(2, pan);
        m.set(3, processingCode);
        m.set(7, transmissionTime());
        m.set(11, nextStan());
        m.set(12, LOCAL_TIME.format(now));
        m.set(13, LOCAL_DATE.format(now));
        m.set(14, expiry);
        m.set(22, "021"); // magnetic stripe, PIN entry capability
        m.set(25, "00");
        m.set(35, pan + "=" + expiry + "101");
        m.set(41, terminalId);
        m.set(42, merchantId);
        m.set(49, "360");
        m.set(52, pinBlock(pin, pan, tpk));
        return m;
    }

    /**
     * Sends the request, prints the answer as one JSON line, and checks what every answer must
     * have: the response MTI, the swapped TPDU, the echoed STAN and terminal, and the expected
     * DE39.
     */
    private ISOMsg exchange(String step, ISOMsg request, String code) throws UnexpectedAnswer, IOException, ISOException {
        channel.send(request);
        ISOMsg answer = channel.receive();
        byte[] header = answer.getHeader();
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("step", step);
        line.put("mti", answer.getMTI());
        line.put("tpdu", header == null ? "" : ISOUtil.hexString(header));
        line.put("fields", fieldsOf(answer));
        Peer.Json.write(out, line);
        out.write('\n');
        out.flush();

        String mti = request.getMTI();
        String answerMti = mti.substring(0, 2) + (char) (mti.charAt(2) + 1) + mti.substring(3);
        expect(step, "MTI", answer.getMTI(), answerMti);
        expect(step, "TPDU", header == null ? "" : ISOUtil.hexString(header), ISOUtil.hexString(TPDU_ANSWER));
        expect(step, "DE11", answer.getString(11), request.getString(11));
        expect(step, "DE41", answer.getString(41), request.getString(41));
        expect(step, "DE39", answer.getString(39), code);
        return answer;
    }

    private static void expect(String step, String what, String actual, String expected) throws UnexpectedAnswer {
        if (!expected.equals(actual)) {
            throw new UnexpectedAnswer(step + ": " + what + " is " + actual + ", expected " + expected);
        }
    }

    private static void expectLength(String step, ISOMsg answer, int field, int length) throws UnexpectedAnswer {
        String value = answer.getString(field);
        if (value == null || value.length() != length) {
            throw new UnexpectedAnswer(step + ": DE" + field + " is " + value + ", expected " + length + " characters");
        }
    }

    private static long balanceOf(String step, ISOMsg answer) throws UnexpectedAnswer {
        String de54 = answer.getString(54);
        if (de54 == null || de54.length() != 20 || !de54.startsWith(BALANCE_PREFIX)
                || !de54.substring(8).chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw new UnexpectedAnswer(step + ": DE54 is " + de54 + ", not " + BALANCE_PREFIX + " and 12 digits");
        }
        return Long.parseLong(de54.substring(8));
    }

    /**
     * ISO 9564-1 format 0 under the terminal PIN key: the PIN field (0, the PIN's length, the
     * PIN, F fill) XOR the account field (0000, the rightmost 12 PAN digits without the check
     * digit), encrypted with double-length 3DES (K1 K2 K1) in ECB mode.
     */
    static byte[] pinBlock(String pin, String pan, String tpkHex) throws GeneralSecurityException {
        HexFormat hex = HexFormat.of();
        StringBuilder pinField = new StringBuilder("0").append(Integer.toHexString(pin.length())).append(pin);
        while (pinField.length() < 16) {
            pinField.append('F');
        }
        byte[] clear = hex.parseHex(pinField);
        byte[] account = hex.parseHex("0000" + pan.substring(pan.length() - 13, pan.length() - 1));
        for (int i = 0; i < clear.length; i++) {
            clear[i] ^= account[i];
        }
        byte[] doubleLength = hex.parseHex(tpkHex);
        byte[] key = Arrays.copyOf(doubleLength, 24);
        System.arraycopy(doubleLength, 0, key, 16, 8);
        Cipher cipher = Cipher.getInstance("DESede/ECB/NoPadding");
        cipher.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(key, "DESede"));
        byte[] block = cipher.doFinal(clear);
        Arrays.fill(clear, (byte) 0);
        Arrays.fill(key, (byte) 0);
        return block;
    }

    /** The answer in the peers' "fields" convention (tests/peers/README.md). */
    static Map<String, Object> fieldsOf(ISOMsg m) throws ISOException {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("t", m.getMTI());
        for (int i = 2; i <= m.getMaxField(); i++) {
            if (!m.hasField(i)) {
                continue;
            }
            ISOComponent c = m.getComponent(i);
            fields.put(Integer.toString(i), c instanceof ISOBinaryField
                    ? ISOUtil.hexString((byte[]) c.getValue())
                    : (String) c.getValue());
        }
        return fields;
    }

    /** DE7, MMDDhhmmss in UTC. */
    static String transmissionTime() {
        return TRANSMISSION.format(Instant.now().atOffset(ZoneOffset.UTC));
    }

    private String nextStan() {
        stan++;
        return String.format(Locale.ROOT, "%06d", stan);
    }

    private static Map<String, Object> objectAt(Map<String, Object> object, String key, int index) {
        return cast(((List<?>) object.get(key)).get(index));
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> cast(Object value) {
        return (Map<String, Object>) value;
    }
}
