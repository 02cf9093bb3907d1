"""Test strings for the tokenizer fixtures (imported by make_tokenizer_fixtures.py).

`build_strings()` returns the same list on every run: hand-written cases first, then seeded random
mixes drawn from character pools. No network, no files: the list depends on this file only.
"""

import random
import unicodedata

SEED = 20240611

# --------------------------------------------------------------------------------------------
# Hand-written cases
# --------------------------------------------------------------------------------------------

BASICS = [
    "", " ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", "a", "A", "Z", "0", ".", "!", "é",
    "hello", "Hello", "HELLO", "Hello world", " Hello world", "Hello world ", "  Hello  world  ",
    "Hello\nworld", "Hello\r\nworld", "Hello\tworld", "Hello\n\nworld", "Hello \n world",
    "\u00a0", "a\u00a0b", "\u3000", "日本\u3000語", "\n\n\n", " \n ", "\t\t", "line1\nline2\n",
    "trailing   ", "   leading", " x", "x ", " x ", "\nx", "x\n", "\tx", "x\t", " \t\n\r\x0b\x0c",
]

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse...",
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
    "Tokenizers split text into pieces; the model only ever sees integer ids.",
    "She sells sea-shells by the sea-shore; the shells she sells are sea-shells, I'm sure.",
    "A man, a plan, a canal: Panama!",
    "In 1969, Apollo 11 landed on the Moon at 20:17 UTC on July 20.",
    "Please don't hesitate to contact us at support@example.com or +1 (555) 010-9999.",
    "The U.S.A. and the U.K. signed the treaty on Jan. 3rd, e.g. at 10 a.m. (approx.).",
    "Mr. O'Neil's dog—a 3-year-old golden retriever—won \"Best in Show\" twice.",
    "Whatever you do, don't press the red button!!! Seriously?!",
    "I'd've gone if they'd asked, but y'all didn't.",
    "  Indented sentence with trailing spaces.   ",
    "Multiple\n\nparagraphs\n\n\nwith blank lines.\n",
    "Windows line endings\r\nare here\r\nand here.\r\n",
    "Tabs\tseparate\tthese\tcolumns\tnicely.",
    "Mixed   spacing    between     words.",
    "ALL CAPS SENTENCE WITH SHOUTING AND IT'S VERY LOUD.",
    "lowercase sentence without any punctuation at all",
    "camelCaseIdentifier and snake_case_identifier and kebab-case-identifier",
    "The café served crème brûlée and a piña colada to the naïve fiancé.",
    "Once upon a midnight dreary, while I pondered, weak and weary,\nOver many a quaint and curious volume of forgotten lore—",
    "Q: What's 2+2?\nA: It's 4.",
    "Hello, World! Hello, World! Hello, World! Hello, World!",
    "The year 2024 had 366 days; 2023 had 365.",
    "Rock 'n' roll ain't noise pollution.",
    "“Smart quotes” and ‘single smart quotes’ — and an em dash – and an en dash.",
    "Ellipsis… and the three-dot version...",
    "He said: «Bonjour», and she replied „Guten Tag“.",
]

CODE = [
    "def add(a, b):\n    return a + b\n",
    "def f(x):\n\tif x > 0:\n\t\treturn x\n\treturn -x\n",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\nprint(x.shape)",
    "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"Hello, %s!\\n\", \"world\"); return 0; }",
    "let xs: [Int] = [1, 2, 3]\nlet ys = xs.map { $0 * 2 }.filter { $0 > 2 }",
    "func tokenize(_ text: String) throws -> [Int] {\n    guard !text.isEmpty else { return [] }\n    return try model.encode(text)\n}",
    "{\"name\": \"nekochat\", \"version\": \"0.1.0\", \"tags\": [\"llm\", \"swift\"], \"ok\": true, \"n\": null}",
    "<html><head><title>Test</title></head><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "$ ls -la | grep '\\.py$' | awk '{print $9}' > files.txt && wc -l files.txt",
    "https://example.com/path/to/page?query=1&lang=en#section-2",
    "C:\\Users\\neko\\Documents\\file (1).txt",
    "/usr/local/lib/python3.11/site-packages/tokenizers/__init__.py",
    "x += 1; y -= 2; z *= 3; w /= 4; v %= 5; u **= 6; t //= 7",
    "if (a != b && c == d || !e) { return a <= b ? c : d >= e; }",
    "const f = async (x) => { await g(x); return x?.y ?? 0; };",
    "    # four-space indent\n        # eight-space indent\n\t# tab indent\n",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
    "```python\nprint('hi')\n```",
    "regex = r\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+\"",
    "0x1F600 0b1010 0o755 1_000_000 3.0e-8 .5 5. 1e10",
    "matrix[i][j] = matrix[i-1][j-1] + cost;",
    "std::vector<std::pair<int, std::string>> v{{1, \"a\"}, {2, \"b\"}};",
    "fn main() { let s: &str = \"héllo\"; println!(\"{s:?}\"); }",
    "key1=value1\nkey2 = value2\n[section]\nkey3: \"value 3\"",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><root attr='1'/>",
    "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-old\n+new",
    "print(f\"{name!r:>10} {value:08.3f}\")",
    "    \n    \n    pass\n",
]

SCRIPTS = [
    # Latin with diacritics
    "Ça va? Très bien, merci. Où est la bibliothèque? À bientôt!",
    "Grüße aus München! Die Straße ist übermäßig groß. Fußgänger: Ärger, Öl, Übel.",
    "¿Dónde está el baño? ¡Qué día más bonito! El niño comió piñas.",
    "Não há nada como a informação. Coração, ação, pão, mãe.",
    "Zażółć gęślą jaźń. Łódź, Kraków, Gdańsk, Wrocław.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Tiếng Việt có rất nhiều dấu: ả ạ ẩ ậ ẳ ặ ẻ ẹ ể ệ ỉ ị ỏ ọ ổ ộ ở ợ ủ ụ ử ự ỷ ỵ.",
    "İstanbul'da ılık bir gün. Iğdır, Şişli, Çeşme, Ğ ğ, I ı İ i.",
    "Árvíztűrő tükörfúrógép. Őrült ŰRHAJÓ.",
    "Dansk: æ ø å Æ Ø Å; Íslenska: þ ð Þ Ð; Føroyskt.",
    "Română: ș ț Ș Ț (comma) vs ş ţ Ş Ţ (cedilla).",
    # Greek
    "Ελληνικά: Γειά σου Κόσμε! Καλημέρα, τι κάνεις;",
    "ΣΊΣΥΦΟΣ σίσυφος ΟΔΥΣΣΕΥΣ ὀδυσσεύς ἀρχή ῥῆμα ᾠδή",
    # Cyrillic
    "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська: Ґ ґ Є є І і Ї ї. Щастя — це шлях.",
    "Српски: Љубав, Њива, Џеп, Ђак, Ћерка.",
    # Arabic, Persian, Hebrew
    "مرحبا بالعالم! كيف حالك اليوم؟ السلام عليكم ورحمة الله.",
    "اَلْعَرَبِيَّةُ لُغَةٌ جَمِيلَةٌ",
    "فارسی: سلام دنیا، حال شما چطور است؟ ۱۲۳۴۵",
    "שלום עולם! מה שלומך היום?",
    "בְּרֵאשִׁית בָּרָא אֱלֹהִים",
    "Mixed RTL: The word שלום means peace, and مرحبا means hello.",
    # Indic
    "नमस्ते दुनिया! आप कैसे हैं? हिन्दी भाषा सुंदर है।",
    "क्षत्रिय ज्ञान श्री द्व्यक्ष्र्य",
    "বাংলা ভাষা: আমি তোমাকে ভালোবাসি।",
    "தமிழ்: வணக்கம் உலகம்!",
    "ಕನ್ನಡ ತೆಲುగు മലയാളം ગુજરાતી ਪੰਜਾਬੀ ଓଡ଼ିଆ",
    "සිංහල: ආයුබෝවන්!",
    # Southeast Asian
    "ภาษาไทย: สวัสดีครับ ยินดีที่ได้รู้จัก",
    "ກະລຸນາ ສະບາຍດີ",
    "ភាសាខ្មែរ៖ សួស្ដី",
    "မြန်မာဘာသာ မင်္ဂလာပါ",
    # CJK
    "你好，世界！今天天气很好。我们一起去吃饭吧。",
    "繁體中文：臺灣、香港、澳門。",
    "日本語：こんにちは、世界！今日はいい天気ですね。カタカナ、ひらがな、漢字。",
    "ｶﾀｶﾅ ﾊﾝｶｸ ｶﾞｷﾞｸﾞ and ＦＵＬＬＷＩＤＴＨ １２３",
    "한국어: 안녕하세요, 세계! 오늘 날씨가 좋네요.",
    "𠀀𠀁𠀂 𪚥 𩸽 (CJK extension B and beyond)",
    "㐀㐁㐂 龘 鿿 〇 々 〆 ヶ",
    # Hangul jamo
    "\u1112\u1161\u11ab\u1100\u1173\u11af",  # 한글 as conjoining jamo
    "한글 vs \u1112\u1161\u11ab\u1100\u1173\u11af",
    "ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎ ㅏㅑㅓㅕㅗㅛㅜㅠㅡㅣ",
    "\u1100\u1161 \u1100\u1161\u11a8 \u115f\u1160 \ua960\ud7b0",
    # others
    "ქართული: გამარჯობა",
    "Հայերեն: Բարեւ",
    "አማርኛ: ሰላም",
    "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ",
    "ᐃᓄᒃᑎᑐᑦ",
    "བོད་སྐད།",
    "ꦧꦱꦗꦮ",
    "Ｈｅｌｌｏ，ｗｏｒｌｄ！",
]

EMOJI = [
    "👍", "👍🏽", "👍🏿👍🏻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏳️‍⚧️", "🇺🇸🇯🇵🇩🇪🇫🇷", "🇺🇸", "❤️", "❤", "♥️",
    "🧑🏾‍💻", "👩🏼‍🚀", "🤦🏻‍♂️", "😀😃😄😁😆", "1️⃣ 2️⃣ #️⃣ *️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🏴󠁧󠁢󠁥󠁮󠁧󠁿",
    "I love 🍕 and 🍣!", "Great job 👏👏👏", "🤗 Hugging Face", "emoji🙂inside🙃words",
    "🫠🫡🫢🫣🫤🥹", "☺ ☺️ ✌ ✌️ ✌🏾", "👁️‍🗨️", "🐈‍⬛", "🧔‍♀️", "👩‍❤️‍💋‍👨",
    "Family: 👨‍👨‍👧 and 👩‍👩‍👦‍👦.", "🇦🇨🇦🇩🇦🇪", "🇺", "🇺 🇸", "\u200d", "a\u200db", "👨\u200d",
    "\u200d👨", "🏻", "a🏻", "©️ ®️ ™️", "⌚⌛⏰", "🀄🃏", "🎌🎍🎎",
]

COMBINING = [
    "é", "e\u0301", "café", "cafe\u0301", "Å", "A\u030a", "\u212b", "ñ", "n\u0303", "ü", "u\u0308",
    "ệ", "e\u0323\u0302", "e\u0302\u0323", "ê\u0323", "ẹ\u0302",
    "Z̴̡̢̛̛͓̪̗̻̳̭̊̈́̈́͋̔̾a̷̧̛̰̠̞͑l̶͉̲̄̍g̵̨͕̓o̸̢̔",
    "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309\u030a",
    "\u0301", "\u0301\u0301\u0301", " \u0301", "\u0301a", "x\u0301 y\u0301", "1\u20e3",
    "한", "\u1112\u1161\u11ab", "ガ", "カ\u3099", "パ", "ハ\u309a",
    "ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ", "file ﬁle", "① ② ⑩ ⑳", "Ⅻ ⅻ Ⅳ", "x² y³ H₂O", "½ ¼ ¾ ⅓", "㎏ ㎞ ㎡ ℃ ℉",
    "ℌ ℍ ℕ 𝔥 𝕳 𝐀𝐁𝐂", "K K k", "Ω Ω ω", "İ i̇ I ı", "ǅ ǆ Ǆ", "ẞ ß SS", "ΣΑΣ σας ς",
    "…", "™ ℠ ©", "Ａ", "ａ", "ﾟ", "︵", "¨", "\u00b4", "´", "ˊ", "\u2126\u212a\u212b",
    "\u0041\u030a\u0301", "\u00c5\u0301", "\u01fa", "\u1e9b\u0323", "\u0958", "\u0915\u093c",
    "\u05d1\u05bc", "\ufb31", "\u0627\u0653", "\u0622", "\u0e40\u0e01\u0e49", "\u0f71\u0f72",
    "\u0cbf\u0cd5", "\u0ccb", "\u0d4a", "\u0d46\u0d3e",
]

WHITESPACE = [
    "a  b", "a   b", "a    b", "a\t\tb", "a \t b", "a\n\nb", "a\r\n\r\nb", "a \n b", "a\u00a0\u00a0b",
    "a\u2003b", "a\u2009b", "a\u2002\u2003\u2004b", "\u200b", "a\u200bb", "\ufeffBOM at start",
    "a\u2028b", "a\u2029b", "a\x0bb", "a\x0cb", "a\x85b", "a\u1680b", "a\u180eb", "a\u202fb",
    "a\u205fb", "a\u3000b", "a\u3000\u3000b", " ", "  ", " " * 7, " " * 16, " " * 33,
    "\n" * 2, "\n" * 5, "\r\n" * 3, "\r\r\n", "\n\r", " \n", "\n ", " \n \n ", "\t\n\t\n",
    "   \n   \n", "x   \n   y", "end with newline\n", "end with spaces   ", "end with tab\t",
    "\n\nstart with newlines", "  \tmixed\t  ws  \t", "word \u00a0word", "word\u00a0 word",
    "a \u3000 b", " \u3000", "\u3000 ", "\u00a0 ", " \u00a0", "\u00a0\n", "\n\u00a0",
    "a\r\nb\nc\rd", "\r\n\r\n\r\n", "  \r\n  ", "\t\r\n", "1 2  3   4    5     6",
]

NUMBERS = [
    "0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000", "-42", "+17",
    "1e-10", "6.022e23", "0xFF", "0b1010", "2024-01-15", "12:30:45", "$1,234.56", "€99,99",
    "£5", "¥1000", "50%", "٠١٢٣٤٥٦٧٨٩", "١٢٣", "۱۲۳", "०१२३४५६७८९", "१२३", "１２３", "০১২",
    "๐๑๒๓", "²³¹", "⁰⁴", "₀₁₂", "Ⅳ", "1st 2nd 3rd 4th", "v1.2.3", "192.168.0.1", "+1-800-555-0199",
    "3141592653589793238462643383279502884197169399375105820974944592",
    "0000000000", "007", "1.", ".5", "1/2", "3:2", "100km/h", "-0", "1,2,3,4,5", "10^9", "2**10",
    "abc123def456", "a1b2c3", "123abc", "CO2", "H2O", "mp3 mp4 h264 x86_64 arm64",
]

PUNCT = [
    "!!!", "???", "...", "?!?!", "---", "***", "<<<>>>", "(((", ")))", "\"quoted\"", "'single'",
    "``backticks``", "«guillemets»", "„German“", "「日本」", "『二重』", "。、", "،؛؟", "—–-",
    "/// comment", "!@#$%^&*()_+-=[]{}|;':\",./<>?`~", "a.b.c", "hello,world", "end.", "...and",
    "::", "->", "=>", "!==", "&&", "||", "\\\\", "\\n", "''", '""', "'", '"', "`", "~~~", "###",
    "¡¿", "‽", "⁇", "※", "§¶", "†‡", "•◦‣", "‹›", "⟨⟩", "【】", "〈〉", "·", "¦", "_", "__init__",
    "a_b_c", "!a!", ".a.", ",a,", "@user", "#hashtag", "$var", "%d", "^_^", "-_-", ":-)", ";)",
    "<3", "</3", "=)", "(╯°□°)╯︵ ┻━┻", "¯\\_(ツ)_/¯", "( ͡° ͜ʖ ͡°)",
]

CONTRACTIONS = [
    "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "'Re 'rE 'Ve 'vE 'Ll 'lL",
    "it's", "IT'S", "It'S", "don't", "DON'T", "Don'T", "we're", "WE'RE", "We'Re", "I've", "I'VE",
    "I'm", "I'M", "you'll", "YOU'LL", "You'Ll", "he'd", "HE'D", "He'D", "'S", "'T", "'Re", "'LL",
    "'Ll", "'tis", "o'clock", "y'all'd've", "it’s", "don’t", "'s'", "  's", "\n's", "'ss", "'dd",
    "'llama", "'verb", "'rest", "'mm", "'ttt", "'", "''s", "s'", "James' book", "the '90s",
    "CAN'T WON'T SHOULDN'T", "he's she's it's", "HE'S SHE'S IT'S", "x'S", "1's", "é's", "日's",
    " 's", "  'll", "\t'm", "'\u0301s", "'s\u0301", "can't've", "CAN'T'VE",
]

SPECIALS = [
    "<|im_start|>", "<|im_end|>", "hi<|im_end|>there", "hi <|im_end|> there", "hi  <|im_end|>  there",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n2+2 = 4.<|im_end|>\n",
    "<s>", "</s>", "<s>hello</s>", "<s> hello </s>", "<unk>", " <s> ", "<s><s></s></s>",
    "<|endoftext|>", "<|endoftext|><|endoftext|>", "text<|endoftext|>more text", "<|endoftext|>\n",
    "<|system|>", "<|user|>", "<|assistant|>", "<|system|>\nYou are Neko.\n<|user|>\nhi\n<|assistant|>\n",
    "<|user|>hi<|assistant|>hello", " <|user|> ", "<think>\nLet me think.\n</think>\n\nThe answer is 4.",
    "<tool_call>{\"name\": \"f\"}</tool_call>", "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "a [MASK] b", "a[MASK]b", "  [MASK]  ", "[mask]",
    "[CLS] hello [SEP]", "the [MASK] sat on the mat", "x[SEP]y", "[MASK][MASK]",
    "<|IM_END|>", "<|Im_End|>", "<|im_end|", "|im_end|>", "<|im_end|>>", "<<|im_end|>",
    "<|im_start|><|im_end|>", "<|im_start|> <|im_end|>", "<|im_start|>\n<|im_end|>",
    "<|im_end|>é", "é<|im_end|>", "日本<|im_end|>語", "🙂<|im_end|>🙃", "<|im_end|> ",
    " <|im_end|>", "\n<|im_end|>\n", "<|im_en d|>", "<| im_end |>", "<|im_end|><|im_end|><|im_end|>",
    "<0x41>", "<0xE2><0x82>", "<0x0A>", "<0x00>", "<0xFF>", "<0x41><0x42>", "<0xZZ>", "<0x4>",
    "▁", "▁▁hello", "hello▁world", " ▁ ", "Ġhello", "Ċ", "ĠĠ", "âĤ¬", "##ing", "</w>", "word</w>",
    "<|user|> <|assistant|>", "<|user|>  text", "text  <|user|>", "New York", "new york",
    "NEW YORK", "New  York", "I love New York!", "newyork", "cat", "the cat sat", "concatenate",
    "cats", "Cat.", "CAT", "ing", "singing", "[cls]", "<S>", "</S>", "<pad>", "<mask>",
]

CONTROL = [
    "\x00", "a\x00b", "\x01\x02\x03", "\x1b[31mred\x1b[0m", "\x7f", "\x08", "a\x1fb", "\x85",
    "\u200e\u200f", "\u202e reversed \u202c", "\ufffd", "\ufffd\ufffd", "\ufffe", "\uffff",
    "\U0010ffff", "\U0010fffd", "\ue000\uf8ff", "\U000f0000", "\U000e0001\U000e0041\U000e007f",
    "\ufe0f", "\ufe0e", "a\ufe0fb", "\u2060", "\u00ad", "soft\u00adhyphen", "\u034f", "\u061c",
    "\u2061\u2062\u2063\u2064", "\u206a\u206f", "\ufff9\ufffa\ufffb", "\U0001d173\U0001d17a",
    "\x00\x00\x00", "tab\x09vt\x0bff\x0ccr\x0d", "\x1c\x1d\x1e\x1f", "\x80\x81\x9f", "\u0378",
    "\U000e0100", "\U00020000", "\U0002a6d6", "\U0003134a", "\U0001f9ff", "\U0001fa70",
]

MIXED = [
    "Hello 世界! Привет мир! مرحبا 🌍",
    "日本語とEnglishのmixed文章です。Version 2.0をリリース!",
    "El año 2024 será 🎉 increíble — ¿verdad?",
    "Ünïcödé everywhere: ñ, ç, ø, å, ß, œ, æ, þ.",
    "数字123と文字abcの混在。",
    "Price: ₹1,299 / $15.99 / €14,50 / ¥2,300 / ₩20,000",
    "Math: ∀x∈ℝ, x²≥0; ∑ᵢ aᵢ = ∫₀¹ f(x) dx ≈ 3.14 ≠ π",
    "Arrows → ← ↑ ↓ ⇒ ⇔ and boxes ┌─┐│└┘ ░▒▓█",
    "😀 hello 😀 world 😀",
    "한국어와 日本語 and English",
    "Line one.\nСтрока два.\n第三行。\nالسطر الرابع.",
    "tab\tseparated\t日本\tвалюта\t€",
    "email: 猫@例え.jp, url: https://例え.jp/パス?q=値",
    "Greek in math: α β γ δ ε ζ η θ λ μ π σ φ ω Δ Σ Ω",
    "मैंने 3 किताबें पढ़ीं, and you?",
    "Thai numbers ๑๒๓ and Arabic ٤٥٦ and Latin 789",
    "I'M 日本's BEST-SELLER (№1)!",
    "«Ça, c'est l'été», dit-il.",
    "don't 日本't ЭТО'S",
    "hello\u00a0world\u3000こんにちは\u2003мир",
]


def long_cases():
    word = "Supercalifragilisticexpialidocious" * 7  # 238 chars
    rng = random.Random(SEED + 1)
    letters = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(300))
    return [
        "a" * 300, "ab" * 150, "abc" * 100, word, word.upper(), "🙂" * 100, "日" * 200, " " * 200,
        "\n" * 100, "-" * 200, "=" * 120, "0" * 200, "1234567890" * 25, "ا" * 150, letters,
        "é" * 150, "e\u0301" * 150, "\t" * 64, "." * 150, "!?" * 100, "a " * 150, "ha" * 120,
        "👨‍👩‍👧‍👦" * 20, "\u0301" * 100, "x" + "\u0301" * 60, "https://example.com/" + "a/" * 100,
        "Pneumonoultramicroscopicsilicovolcanoconiosis " * 5, "_" * 100, "ab1" * 80,
        "ก" * 120, "가" * 120, "ä" * 200, "Ж" * 200, "\u3000" * 50, "\u00a0" * 50, "'s" * 60,
        "<|im_end|>" * 20, "<0x41>" * 30, "▁" * 80, "\r\n" * 60, " \n" * 80,
    ]


# --------------------------------------------------------------------------------------------
# Random mixes
# --------------------------------------------------------------------------------------------

def _rng_chars(a, b):
    return [chr(c) for c in range(a, b + 1) if unicodedata.category(chr(c)) != "Cn"]


POOLS = {
    "ascii_lower": list("abcdefghijklmnopqrstuvwxyz"),
    "ascii_upper": list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "digits": list("0123456789"),
    "ascii_punct": list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "latin_ext": list("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœŠšŽžłŁőŐűŰăĂșȘțȚİığĞşŞđĐħĦ"),
    "greek": _rng_chars(0x391, 0x3C9) + list("άέήίόύώϊϋΐΰἀἁὠᾳῶ"),
    "cyrillic": _rng_chars(0x410, 0x44F) + list("ёЁєЄіІїЇґҐўЎђћџ"),
    "arabic": _rng_chars(0x621, 0x64A) + list("\u064b\u064e\u064f\u0650\u0651\u0652٠١٢٣") ,
    "hebrew": _rng_chars(0x5D0, 0x5EA) + list("\u05b0\u05b4\u05b7\u05bc"),
    "devanagari": _rng_chars(0x905, 0x939) + list("\u093e\u093f\u0940\u0941\u0947\u094b\u094d\u0902\u0903०१२"),
    "thai": _rng_chars(0xE01, 0xE2E) + list("\u0e31\u0e34\u0e35\u0e48\u0e49\u0e32\u0e40\u0e41"),
    "cjk": list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴"),
    "kana": _rng_chars(0x3041, 0x3096) + _rng_chars(0x30A1, 0x30FA) + list("ーっッ"),
    "hangul": [chr(0xAC00 + i * 37) for i in range(300)],
    "jamo": _rng_chars(0x1100, 0x1112) + _rng_chars(0x1161, 0x1175) + _rng_chars(0x11A8, 0x11C2),
    "emoji": list("😀😃😄😁😆😅😂🤣😊😇🙂🙃😉😌😍🥰😘😗😙😚😋😛😝😜🤪🤨🧐🤓😎🤩🥳😏😒😞😔😟😕🙁😣😖😫😩🥺😢😭😤😠😡🤬🤯😳🥵🥶😱😨😰😥😓🤗🤔🤭🤫🤥😶😐😑😬🙄😯😦😧😮😲🥱😴🤤😪😵🤐🥴🤢🤮🤧😷🤒🤕🤑🤠👍👎👏🙌👐🤲🤝🙏✍💅🤳💪🦾🦵🦿🦶👂🦻👃🧠🦷🦴👀👁👅👄💋🩸🐶🐱🐭🐹🐰🦊🐻🐼🐨🐯🦁🐮🐷🐸🐵🍏🍎🍐🍊🍋🍌🍉🍇🍓🍈🍒🍑🥭🍍🥥🥝🍅⚽🏀🏈⚾🥎🎾🏐🏉🥏🎱🚗🚕🚙🚌🚎🏎🚓🚑🚒🚐❤🧡💛💚💙💜🖤🤍🤎💔✨⭐🌟💫🔥💥"),
    "emoji_mod": ["\U0001f3fb", "\U0001f3fc", "\U0001f3fd", "\U0001f3fe", "\U0001f3ff", "\ufe0f", "\u200d"],
    "flags": [chr(0x1F1E6 + a) + chr(0x1F1E6 + b) for a, b in
              [(20, 18), (9, 15), (3, 4), (5, 17), (6, 1), (2, 13), (8, 13), (10, 17), (1, 17), (4, 18)]],
    "combining": _rng_chars(0x300, 0x36F) + list("\u0483\u0591\u05b0\u0610\u064b\u093c\u0e31\u1ab0\u1dc0\u20d0\u20e3\ufe20"),
    "whitespace": [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u2009", "\r", "\x0b", "\x0c", "\u2028", "\x85"],
    "symbols": list("©®™°±×÷µ¶§¤¢£¥€₹₽₩¬¦∀∂∃∅∇∈∉∋∏∑−∓√∝∞∠∧∨∩∪∫≈≠≡≤≥⊂⊃⊆⊇⊕⊗←↑→↓↔⇐⇒⇔■□▪▫▲△▼▽◆◇○●★☆♠♣♥♦♪♫"),
    "unicode_punct": list("¡¿«»‹›‐‑‒–—―‖‘’‚‛“”„‟†‡•‣…‰′″‴※‼‽⁇⁈⁉、。〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟・，：；？！（）［］｛｝"),
    "control": [chr(c) for c in list(range(0x00, 0x09)) + list(range(0x0E, 0x20)) + [0x7F, 0x80, 0x9F]] + list("\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad"),
    "nfkc": list("ﬁﬂﬀﬃ①②⑩ⅫⅣ²³₂½¼㎏㎞℃ℌℍ𝔥𝕳𝐀ＡＢａｂ１２ｶﾀﾅﾟ︵¨´\u2126\u212a\u212b…™ǅĲŉſ"),
    "casefold": list("İıIiẞßΣσςǄǅǆŸÿĲĳΐΰ"),
}

WORDS = sorted({w for s in ENGLISH + SCRIPTS + MIXED for w in s.split() if len(w) <= 20})
SPECIAL_PIECES = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|user|>", "<|assistant|>",
                  "<|system|>", "<s>", "</s>", "<unk>", "[CLS]", "[SEP]", "[MASK]", "<think>",
                  "</think>", "New York", "cat", "<0x41>", "▁"]
CONTR = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
CODE_TOKENS = ["def", "return", "if", "else", "for", "in", "(", ")", "{", "}", "[", "]", ":", ";", "=",
               "==", "+=", "->", "=>", "x", "y", "i", "0", "1", "42", "\"str\"", "'c'", "self.", "print",
               "    ", "\t", "\n", "\n    ", "//", "#", "/*", "*/", "&&", "||", "!", "None", "null", "true"]


def _pick_pool(rng):
    return POOLS[rng.choice(sorted(POOLS))]


def _rand_codepoint(rng):
    while True:
        plane = rng.random()
        if plane < 0.5:
            c = rng.randint(0x20, 0x7FF)
        elif plane < 0.85:
            c = rng.randint(0x800, 0xFFFF)
        else:
            c = rng.randint(0x10000, 0x10FFFF)
        if 0xD800 <= c <= 0xDFFF:
            continue
        return chr(c)


def _gen_one(rng, mode):
    if mode == "words":
        n = rng.randint(1, 12)
        seps = [" ", " ", " ", "  ", "\n", "\t", ", ", ". ", "", "\u00a0", "\r\n", " - "]
        out = []
        for i in range(n):
            out.append(rng.choice(WORDS))
            if i + 1 < n:
                out.append(rng.choice(seps))
        return "".join(out)
    if mode == "chars":
        pools = [_pick_pool(rng) for _ in range(rng.randint(1, 3))]
        return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 40)))
    if mode == "script_run":
        pool = _pick_pool(rng)
        parts = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(1, 6))]
        return rng.choice([" ", "", "  ", "\n"]).join(parts)
    if mode == "combining":
        base = POOLS["ascii_lower"] + POOLS["latin_ext"] + POOLS["greek"] + POOLS["cyrillic"] + [" ", "1"]
        out = []
        for _ in range(rng.randint(1, 12)):
            out.append(rng.choice(base))
            for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                out.append(rng.choice(POOLS["combining"]))
        s = "".join(out)
        form = rng.choice(["raw", "NFC", "NFD", "NFKC", "NFKD"])
        return s if form == "raw" else unicodedata.normalize(form, s)
    if mode == "whitespace":
        out = []
        for _ in range(rng.randint(1, 10)):
            r = rng.random()
            if r < 0.5:
                out.append("".join(rng.choice(POOLS["whitespace"]) for _ in range(rng.randint(1, 6))))
            else:
                out.append(rng.choice(WORDS))
        return "".join(out)
    if mode == "code":
        return "".join(rng.choice(CODE_TOKENS) + rng.choice(["", " ", "", ""]) for _ in range(rng.randint(3, 25)))
    if mode == "contractions":
        out = []
        for _ in range(rng.randint(1, 6)):
            w = rng.choice(WORDS + ["it", "I", "we", "they", "don", "can", "x", ""])
            c = rng.choice(CONTR + ["'", "’s", "'S"])
            c = "".join(ch.upper() if rng.random() < 0.4 else ch for ch in c)
            out.append(w + c + rng.choice(["", " ", "  ", "\n", "s", "e"]))
        return "".join(out)
    if mode == "specials":
        out = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            if r < 0.45:
                out.append(rng.choice(SPECIAL_PIECES))
            elif r < 0.8:
                out.append(rng.choice(WORDS))
            else:
                out.append(rng.choice(POOLS["whitespace"]))
            out.append(rng.choice(["", "", " ", "\n", "  "]))
        return "".join(out)
    if mode == "numbers":
        out = []
        for _ in range(rng.randint(1, 6)):
            n = "".join(rng.choice(POOLS["digits"]) for _ in range(rng.randint(1, 14)))
            out.append(n + rng.choice(["", ".", ",", " ", "%", "px", "e5", "-", ":", "st"]))
            out.append(rng.choice(["", " ", "  ", "\n", "$", "€"]))
        return "".join(out)
    if mode == "emoji":
        out = []
        for _ in range(rng.randint(1, 8)):
            e = rng.choice(POOLS["emoji"])
            r = rng.random()
            if r < 0.25:
                e += rng.choice(POOLS["emoji_mod"][:5])
            elif r < 0.45:
                e += "\u200d" + rng.choice(POOLS["emoji"])
            elif r < 0.55:
                e = rng.choice(POOLS["flags"])
            elif r < 0.6:
                e += "\ufe0f"
            out.append(e + rng.choice(["", "", " ", "a", "日"]))
        return "".join(out)
    if mode == "codepoints":
        return "".join(_rand_codepoint(rng) for _ in range(rng.randint(1, 16)))
    if mode == "punct":
        pool = POOLS["ascii_punct"] + POOLS["unicode_punct"]
        out = []
        for _ in range(rng.randint(1, 8)):
            out.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 5))))
            out.append(rng.choice(["", " ", rng.choice(WORDS)]))
        return "".join(out)
    if mode == "mixed":
        out = []
        for _ in range(rng.randint(2, 10)):
            sub = rng.choice(["words", "chars", "numbers", "emoji", "punct", "whitespace", "specials",
                              "contractions", "combining"])
            out.append(_gen_one(rng, sub)[:40])
        return "".join(out)
    raise ValueError(mode)


MODES = ["words", "chars", "script_run", "combining", "whitespace", "code", "contractions",
         "specials", "numbers", "emoji", "codepoints", "punct", "mixed", "mixed"]


def random_cases(n):
    rng = random.Random(SEED)
    out = []
    for i in range(n):
        out.append(_gen_one(rng, MODES[i % len(MODES)] if i < 2 * len(MODES) else rng.choice(MODES)))
    return out


def build_strings(n_random=1200):
    hand = (BASICS + ENGLISH + CODE + SCRIPTS + EMOJI + COMBINING + WHITESPACE + NUMBERS + PUNCT
            + CONTRACTIONS + SPECIALS + CONTROL + MIXED + long_cases())
    out, seen = [], set()
    for s in hand + random_cases(n_random):
        if s not in seen:
            seen.add(s)
            out.append(s)
    for s in out:
        assert isinstance(s, str)
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in s), repr(s)
    return out
