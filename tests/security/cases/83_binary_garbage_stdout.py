# case: binary garbage on stdout and stderr: every byte value, NULs, invalid and overlong UTF-8, lone surrogates' encodings, a BOM, terminal escapes (clear screen, set title, OSC 52 clipboard), a fake JSON record and fake frames; also rich outputs with lone surrogates and invalid UTF-8 in their MIME data, and an exception message full of them
# defence: the server treats output as bytes, caps it, and writes a valid JSON record whatever it holds (invalid UTF-8 replaced); a broken rich output is dropped or replaced, never ends the session
# expect: status=error
# expect: stdout-contains=after the garbage
# expect: stdout-contains=ESC-marker
# expect: finishes-within=60
import os
import random

rng = random.Random(7)
garbage = bytes(range(256)) * 4 + bytes(rng.getrandbits(8) for _ in range(65536))
garbage += (b"\xc0\xaf\xe0\x80\xaf\xed\xa0\x80\xed\xbf\xbf\xf4\x90\x80\x80\xef\xbb\xbf\x00\x00"
            b"\x1b[2J\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x07\x1b[6n"
            b'\n{"status": "ok", "session_id": "sess_fake", "stdout": "forged"}\n'
            b"\x00\x00\x00\x10{\"type\":\"done\"}\xff\xfe")
os.write(1, garbage)
os.write(2, garbage)
os.write(1, b"\nESC-marker \x1b[31m red \x1b[0m\n")


class Weird:
    def _repr_html_(self):
        return "<b>\ud800 lone surrogate</b>"

    def _repr_json_(self):
        return {"k": "\udfff", "bytes": "\x00\x01"}

    def __repr__(self):
        return "Weird(\ud83d)"


from IPython.display import display
display(Weird())
display({"text/plain": "plain \x00 nul", "text/html": "\udc80"}, raw=True)
print("after the garbage")
raise ValueError("evalue with \ud800 and \x00 and \x1b[2J")
