package ssn.peers;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import org.jpos.iso.IFA_AMOUNT;
import org.jpos.iso.IFA_BINARY;
import org.jpos.iso.IFA_LLCHAR;
import org.jpos.iso.IFA_LLLCHAR;
import org.jpos.iso.IFA_LLNUM;
import org.jpos.iso.IFA_NUMERIC;
import org.jpos.iso.IFB_AMOUNT;
import org.jpos.iso.IFB_BINARY;
import org.jpos.iso.IFB_LLCHAR;
import org.jpos.iso.IFB_LLLCHAR;
import org.jpos.iso.IFB_LLNUM;
import org.jpos.iso.IFB_NUMERIC;
import org.jpos.iso.IF_CHAR;
import org.jpos.iso.ISOBasePackager;
import org.jpos.iso.ISOBinaryField;
import org.jpos.iso.ISOBitMapPackager;
import org.jpos.iso.ISOComponent;
import org.jpos.iso.ISOException;
import org.jpos.iso.ISOField;
import org.jpos.iso.ISOFieldPackager;
import org.jpos.iso.ISOMsg;
import org.jpos.iso.ISOUtil;
import org.jpos.iso.packager.ISO87APackager;
import org.jpos.iso.packager.ISO87BPackager;

/**
 * An independent ISO 8583 peer for the switch's interoperability tests, built on jPOS.
 *
 * <pre>
 *   Peer gen N SEED [--max-bytes B]        N random ISO87BPackager messages, one JSON line each
 *   Peer decode                            ISO87BPackager: decode each {"hex": ...} line of stdin
 *   Peer ascii-gen N SEED [--max-bytes B]  the same over ISO87APackager
 *   Peer ascii-decode                      the same over ISO87APackager
 *   Peer spec binary|ascii                 the packager's field table, one JSON line per field
 *   Peer client HOST:PORT MANIFEST_JSON    an EDC terminal on the switch's bcd port ({@link Client})
 *   Peer mac-client bcd|ascii HOST:PORT MANIFEST_JSON   a terminal that MACs ({@link MacClient})
 * </pre>
 *
 * The JSON line formats and the field value conventions are in tests/peers/README.md. The program
 * decides what to generate from the packager's own field packager classes, so the vectors follow
 * jPOS's definitions rather than a copy of them.
 */
public final class Peer {
    private static final int FIELD_MAX = 128;

    private Peer() {}

    public static void main(String[] args) throws IOException {
        Writer out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.US_ASCII));
        try {
            int status = run(args, out);
            out.flush();
            System.exit(status);
        } catch (UsageException e) {
            out.flush();
            System.err.println("error: " + e.getMessage());
            System.err.println("usage: Peer gen|ascii-gen N SEED [--max-bytes B]");
            System.err.println("       Peer decode|ascii-decode   (JSON lines with a \"hex\" key on stdin)");
            System.err.println("       Peer spec binary|ascii");
            System.err.println("       Peer client HOST:PORT MANIFEST_JSON");
            System.err.println("       Peer mac-client bcd|ascii HOST:PORT MANIFEST_JSON");
            System.exit(2);
        }
    }

    private static int run(String[] args, Writer out) throws IOException {
        if (args.length == 0) {
            throw new UsageException("no command");
        }
        switch (args[0]) {
            case "gen":
                generate(new ISO87BPackager(), args, out);
                return 0;
            case "ascii-gen":
                generate(new ISO87APackager(), args, out);
                return 0;
            case "decode":
                decodeAll(new ISO87BPackager(), out);
                return 0;
            case "ascii-decode":
                decodeAll(new ISO87APackager(), out);
                return 0;
            case "client":
                return Client.run(args, out);
            case "mac-client":
                return MacClient.run(args, out);
            case "spec":
                if (args.length != 2) {
                    throw new UsageException("spec takes binary or ascii");
                }
                printSpec(packagerNamed(args[1]), out);
                return 0;
            default:
                throw new UsageException("unknown command " + args[0]);
        }
    }

    private static ISOBasePackager packagerNamed(String name) {
        switch (name) {
            case "binary":
                return new ISO87BPackager();
            case "ascii":
                return new ISO87APackager();
            default:
                throw new UsageException("unknown packager " + name + " (binary or ascii)");
        }
    }

    // ---------------------------------------------------------------------------------------
    // gen

    private static void generate(ISOBasePackager packager, String[] args, Writer out) throws IOException {
        if (args.length != 3 && args.length != 5) {
            throw new UsageException(args[0] + " takes N SEED [--max-bytes B]");
        }
        int count = parseInt(args[1], "N");
        long seed = parseLong(args[2], "SEED");
        int bytesMax = Integer.MAX_VALUE;
        if (args.length == 5) {
            if (!args[3].equals("--max-bytes")) {
                throw new UsageException("unknown option " + args[3]);
            }
            bytesMax = parseInt(args[4], "B");
        }
        Generator generator = new Generator(packager, new Random(seed));
        for (int i = 0; i < count; i++) {
            Map<Integer, String> fields = generator.message();
            byte[] packed = packFitting(packager, fields, bytesMax);
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("hex", ISOUtil.hexString(packed));
            line.put("fields", jsonFields(fields));
            Json.write(out, line);
            out.write('\n');
        }
    }

    /**
     * Packs the message, dropping its longest field (the highest-numbered among equals) until it
     * fits in bytesMax or has one data element left; a bound on the size keeps generation
     * deterministic.
     */
    private static byte[] packFitting(ISOBasePackager packager, Map<Integer, String> fields, int bytesMax) {
        while (true) {
            byte[] packed;
            try {
                packed = pack(packager, fields);
            } catch (ISOException e) {
                throw new IllegalStateException("jPOS cannot pack a generated message " + fields, e);
            }
            if (packed.length <= bytesMax || fields.size() <= 2) {
                return packed;
            }
            int longest = -1;
            for (Map.Entry<Integer, String> e : fields.entrySet()) {
                if (e.getKey() != 0 && (longest < 0 || e.getValue().length() >= fields.get(longest).length())) {
                    longest = e.getKey();
                }
            }
            fields.remove(longest);
        }
    }

    /** Random field values that the packager accepts, following the conventions in the README. */
    private static final class Generator {
        private static final double[] DENSITIES = {0.02, 0.05, 0.1, 0.25, 0.5, 0.9};
        private final ISOBasePackager packager;
        private final Random random;

        Generator(ISOBasePackager packager, Random random) {
            this.packager = packager;
            this.random = random;
        }

        /** Field number to value in the README's conventions; 0 is the MTI. */
        Map<Integer, String> message() {
            Map<Integer, String> fields = new TreeMap<>();
            fields.put(0, digits(4));
            // A quarter of the messages use only the primary bitmap.
            int last = random.nextInt(4) == 0 ? 64 : FIELD_MAX;
            double density = DENSITIES[random.nextInt(DENSITIES.length)];
            for (int i = 2; i <= last; i++) {
                if (random.nextDouble() < density) {
                    fields.put(i, value(i, packager.getFieldPackager(i)));
                }
            }
            if (fields.size() == 1) {
                // A message needs a data element: with none, jPOS packs no bitmap and cannot
                // read its own output.
                int i = 2 + random.nextInt(last - 1);
                fields.put(i, value(i, packager.getFieldPackager(i)));
            }
            return fields;
        }

        private String value(int field, ISOFieldPackager fp) {
            Class<?> kind = fp.getClass();
            int length = fp.getLength();
            if (kind == IFB_NUMERIC.class || kind == IFA_NUMERIC.class) {
                return digits(length);
            }
            if (kind == IFB_LLNUM.class || kind == IFA_LLNUM.class) {
                return field == 35 ? track2(length) : digits(variableLength(0, length));
            }
            if (kind == IFB_AMOUNT.class || kind == IFA_AMOUNT.class) {
                return (random.nextBoolean() ? "C" : "D") + digits(length - 1);
            }
            if (kind == IFB_BINARY.class || kind == IFA_BINARY.class) {
                byte[] bytes = new byte[length];
                random.nextBytes(bytes);
                return ISOUtil.hexString(bytes);
            }
            if (kind == IF_CHAR.class) {
                // jPOS pads fixed char fields with spaces and trims them when reading, so a value
                // ending in a space would not come back unchanged.
                return printable(length - 1) + printableNonSpace();
            }
            if (kind == IFB_LLCHAR.class || kind == IFB_LLLCHAR.class
                    || kind == IFA_LLCHAR.class || kind == IFA_LLLCHAR.class) {
                return printable(variableLength(0, length));
            }
            throw new IllegalStateException("no generator for field " + field + " (" + kind.getSimpleName() + ")");
        }

        /** Empty and full lengths come up often; they are where codecs break. */
        private int variableLength(int lengthMin, int lengthMax) {
            int roll = random.nextInt(10);
            if (roll == 0) {
                return lengthMin;
            }
            if (roll == 1) {
                return lengthMax;
            }
            return lengthMin + random.nextInt(lengthMax - lengthMin + 1);
        }

        /** Track 2: digits with exactly one '=' separator (BCD nibble D). */
        private String track2(int lengthMax) {
            int length = variableLength(1, lengthMax);
            int separator = random.nextInt(length);
            return digits(separator) + "=" + digits(length - separator - 1);
        }

        private String digits(int length) {
            char[] c = new char[length];
            for (int i = 0; i < length; i++) {
                c[i] = (char) ('0' + random.nextInt(10));
            }
            return new String(c);
        }

        private String printable(int length) {
            char[] c = new char[length];
            for (int i = 0; i < length; i++) {
                c[i] = (char) (0x20 + random.nextInt(0x7F - 0x20));
            }
            return new String(c);
        }

        private char printableNonSpace() {
            return (char) (0x21 + random.nextInt(0x7F - 0x21));
        }
    }

    // ---------------------------------------------------------------------------------------
    // decode

    private static void decodeAll(ISOBasePackager packager, Writer out) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            Json.write(out, decodeLine(packager, line));
            out.write('\n');
        }
    }

    private static Map<String, Object> decodeLine(ISOBasePackager packager, String line) {
        Map<String, Object> result = new LinkedHashMap<>();
        try {
            Object hex = Json.parseObject(line).get("hex");
            if (!(hex instanceof String)) {
                throw new IllegalArgumentException("the line has no \"hex\" string");
            }
            byte[] bytes = hexToBytes((String) hex);
            ISOMsg m = new ISOMsg();
            m.setPackager(packager);
            int consumed = m.unpack(bytes);
            if (consumed != bytes.length) {
                // jPOS itself ignores what follows the last field; the peer reports it instead so
                // that a codec writing too much cannot pass.
                throw new ISOException((bytes.length - consumed) + " bytes after the last field"
                        + " (jPOS ignores them), consumed=" + consumed);
            }
            Map<Integer, String> fields = new TreeMap<>();
            for (int i = 0; i <= FIELD_MAX; i++) {
                if (i == 1 || !m.hasField(i)) {
                    continue;
                }
                ISOComponent c = m.getComponent(i);
                fields.put(i, c instanceof ISOBinaryField
                        ? ISOUtil.hexString((byte[]) c.getValue())
                        : (String) c.getValue());
            }
            byte[] repacked = pack(packager, fields);
            result.put("fields", jsonFields(fields));
            result.put("hex", ISOUtil.hexString(repacked));
        } catch (Exception e) {
            result.clear();
            result.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        return result;
    }

    // ---------------------------------------------------------------------------------------
    // shared

    private static byte[] pack(ISOBasePackager packager, Map<Integer, String> fields) throws ISOException {
        ISOMsg m = new ISOMsg();
        m.setPackager(packager);
        for (Map.Entry<Integer, String> e : fields.entrySet()) {
            int i = e.getKey();
            if (packager.getFieldPackager(i) instanceof org.jpos.iso.ISOBinaryFieldPackager) {
                m.set(new ISOBinaryField(i, hexToBytes(e.getValue())));
            } else {
                m.set(new ISOField(i, e.getValue()));
            }
        }
        return m.pack();
    }

    /** The "fields" object: "t" for the MTI, then the data elements in ascending order. */
    private static Map<String, Object> jsonFields(Map<Integer, String> fields) {
        Map<String, Object> json = new LinkedHashMap<>();
        for (Map.Entry<Integer, String> e : fields.entrySet()) {
            json.put(e.getKey() == 0 ? "t" : Integer.toString(e.getKey()), e.getValue());
        }
        return json;
    }

    private static void printSpec(ISOBasePackager packager, Writer out) throws IOException {
        for (int i = 0; i <= FIELD_MAX; i++) {
            ISOFieldPackager fp = packager.getFieldPackager(i);
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("field", i == 0 ? "t" : Integer.toString(i));
            line.put("class", fp.getClass().getSimpleName());
            line.put("length", Integer.toString(fp.getLength()));
            line.put("bitmap", Boolean.toString(fp instanceof ISOBitMapPackager));
            line.put("description", fp.getDescription());
            Json.write(out, line);
            out.write('\n');
        }
    }

    private static byte[] hexToBytes(String hex) {
        if (hex.length() % 2 != 0) {
            throw new IllegalArgumentException("odd number of hex digits");
        }
        byte[] bytes = new byte[hex.length() / 2];
        for (int i = 0; i < bytes.length; i++) {
            int high = Character.digit(hex.charAt(2 * i), 16);
            int low = Character.digit(hex.charAt(2 * i + 1), 16);
            if (high < 0 || low < 0) {
                throw new IllegalArgumentException("not a hex digit at offset " + 2 * i);
            }
            bytes[i] = (byte) (high << 4 | low);
        }
        return bytes;
    }

    private static int parseInt(String s, String name) {
        long value = parseLong(s, name);
        if (value < 0 || value > Integer.MAX_VALUE) {
            throw new UsageException(name + " out of range: " + s);
        }
        return (int) value;
    }

    private static long parseLong(String s, String name) {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new UsageException(name + " is not a number: " + s);
        }
    }

    static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }

    /**
     * Just enough JSON for one object per line: writes strings, nested objects and lists; reads
     * any JSON value (numbers, booleans and null are kept as their text).
     */
    static final class Json {
        private final String text;
        private int at;

        private Json(String text) {
            this.text = text;
        }

        static Map<String, Object> parseObject(String text) {
            Json json = new Json(text);
            json.skipSpace();
            Map<String, Object> object = json.object();
            json.skipSpace();
            if (json.at != text.length()) {
                throw json.error("text after the object");
            }
            return object;
        }

        @SuppressWarnings("unchecked")
        static void write(Writer out, Object value) throws IOException {
            if (value instanceof String) {
                writeString(out, (String) value);
            } else if (value instanceof Map) {
                out.write('{');
                boolean first = true;
                for (Map.Entry<String, Object> e : ((Map<String, Object>) value).entrySet()) {
                    out.write(first ? "" : ", ");
                    first = false;
                    writeString(out, e.getKey());
                    out.write(": ");
                    write(out, e.getValue());
                }
                out.write('}');
            } else if (value instanceof List) {
                out.write('[');
                boolean first = true;
                for (Object item : (List<Object>) value) {
                    out.write(first ? "" : ", ");
                    first = false;
                    write(out, item);
                }
                out.write(']');
            } else {
                throw new IllegalArgumentException("cannot write " + value);
            }
        }

        /** ASCII only, like Python's json.dumps: everything else is a \\u escape. */
        private static void writeString(Writer out, String s) throws IOException {
            out.write('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c == '"' || c == '\\') {
                    out.write('\\');
                    out.write(c);
                } else if (c >= 0x20 && c < 0x7F) {
                    out.write(c);
                } else {
                    out.write(String.format(Locale.ROOT, "\\u%04x", (int) c));
                }
            }
            out.write('"');
        }

        private Object value() {
            skipSpace();
            if (at >= text.length()) {
                throw error("a value is missing");
            }
            char c = text.charAt(at);
            if (c == '{') {
                return object();
            }
            if (c == '[') {
                return list();
            }
            if (c == '"') {
                return string();
            }
            int start = at;
            while (at < text.length() && "{}[],: \t\r\n\"".indexOf(text.charAt(at)) < 0) {
                at++;
            }
            if (start == at) {
                throw error("unexpected '" + c + "'");
            }
            return text.substring(start, at);
        }

        private Map<String, Object> object() {
            expect('{');
            Map<String, Object> object = new LinkedHashMap<>();
            skipSpace();
            if (peek('}')) {
                at++;
                return object;
            }
            while (true) {
                skipSpace();
                String key = string();
                skipSpace();
                expect(':');
                object.put(key, value());
                skipSpace();
                if (peek(',')) {
                    at++;
                    continue;
                }
                expect('}');
                return object;
            }
        }

        private List<Object> list() {
            expect('[');
            List<Object> list = new ArrayList<>();
            skipSpace();
            if (peek(']')) {
                at++;
                return list;
            }
            while (true) {
                list.add(value());
                skipSpace();
                if (peek(',')) {
                    at++;
                    continue;
                }
                expect(']');
                return list;
            }
        }

        private String string() {
            expect('"');
            StringBuilder s = new StringBuilder();
            while (true) {
                if (at >= text.length()) {
                    throw error("unterminated string");
                }
                char c = text.charAt(at++);
                if (c == '"') {
                    return s.toString();
                }
                if (c != '\\') {
                    s.append(c);
                    continue;
                }
                if (at >= text.length()) {
                    throw error("unterminated escape");
                }
                char e = text.charAt(at++);
                switch (e) {
                    case '"': case '\\': case '/': s.append(e); break;
                    case 'b': s.append('\b'); break;
                    case 'f': s.append('\f'); break;
                    case 'n': s.append('\n'); break;
                    case 'r': s.append('\r'); break;
                    case 't': s.append('\t'); break;
                    case 'u':
                        if (at + 4 > text.length()) {
                            throw error("short \\u escape");
                        }
                        try {
                            s.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                        } catch (NumberFormatException x) {
                            throw error("bad \\u escape");
                        }
                        at += 4;
                        break;
                    default:
                        throw error("bad escape \\" + e);
                }
            }
        }

        private void skipSpace() {
            while (at < text.length() && " \t\r\n".indexOf(text.charAt(at)) >= 0) {
                at++;
            }
        }

        private boolean peek(char c) {
            return at < text.length() && text.charAt(at) == c;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
            at++;
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("bad JSON at offset " + at + ": " + what);
        }
    }
}
