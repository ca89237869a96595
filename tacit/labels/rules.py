"""A transparent labeler: a priority-ordered table of phrase families, each tied to a satisfaction level.

It is the cheap first pass of the labeling cascade and the baseline the model-backed labelers must beat.
It follows WildReward's conservative rules: a follow-up is neutral unless it says explicitly what the user
thought of the reply, a continued topic is not praise, and level 4 needs positive framing *and* a
meaningful extension. Every label's reason names the family that fired and the words it matched, so a
wrong label points straight at the phrase to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tacit.core.domain import FeedbackCandidate, Label, SatisfactionLevel

# Feedback sits at the start of a follow-up; what comes after is mostly pasted material (code, logs,
# documents) whose "error" or "thanks" says nothing about the reply. Reading only the head also bounds
# the cost of a 200k-character message.
HEAD_CHARS = 400

NEUTRAL_CONFIDENCE = 0.5

Check = Callable[[re.Match[str], FeedbackCandidate], bool]


def _phrases(words: Sequence[str] = (), cjk: Sequence[str] = ()) -> re.Pattern[str]:
    """One compiled alternation: word-script phrases must stand as whole words, CJK ones match anywhere.

    CJK text has no spaces between words, so a word boundary means nothing there. One boundary check
    around all the words, rather than one per phrase, makes the search several times faster.
    """
    alternatives = [rf"(?<!\w)(?:{'|'.join(words)})(?!\w)"] if words else []
    return re.compile("|".join(alternatives + list(cjk)))


@dataclass(frozen=True)
class RuleFamily:
    """Phrasings that all say the same thing about the reply; the first family that fires labels it.

    ``unless`` holds phrasings that cancel the family wherever they appear ("no thanks"); ``check`` tests
    the match in its context, for the rules that words alone cannot decide.
    """

    name: str
    level: SatisfactionLevel
    confidence: float
    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None = None
    check: Check | None = None

    def fires(self, text: str, candidate: FeedbackCandidate) -> re.Match[str] | None:
        match = self.pattern.search(text)
        if match is None or (self.unless is not None and self.unless.search(text)):
            return None
        if self.check is not None and not self.check(match, candidate):
            return None
        return match


# --- building blocks of the phrases (all written for lower-case text) ---
# A verdict may carry an intensifier ("that's completely wrong"); a free word slot would also let "not"
# in and turn "that's not wrong" into a correction.
_INTENS = (r"(?:(?:so|very|really|pretty|quite|totally|completely|absolutely|entirely|just|simply|clearly|"
           r"still|also|all) )?")
_THAT = r"(?:that|this|it|those|these|your (?:answer|response|reply|code))(?:'?s| is| are| was| were)"
# Subjects that can only mean the reply: "it's crazy how ..." and "it's wrong to ..." judge the world.
_REPLY = (r"(?:that|this|your (?:[\w']+ )?(?:answer|response|reply|code|information|info|facts?|list|math|"
          r"calculation)s?)(?:'?s| is| are| was| were)")
_YOU = r"(?:you'?re|you are|you were|ur)"
_NOT_ABOUT_WORLD = r"(?! (?:to|that|for|of|if|when|how)\b)"  # "that is wrong of you" judges the world
_PROGRAMMING = r"python|javascript|typescript|java|c\+\+|c#|rust|golang|ruby|php|sql|bash|kotlin|swift"
_LANGUAGE = rf"({_PROGRAMMING}|english|chinese)"
_LANGUAGE_CJK = rf"({_PROGRAMMING}|中文|汉语|英文|英语)"
_PRAISE = r"great|perfect|awesome|excellent|wonderful|fantastic|terrific|amazing|brilliant|nice"
_PRAISED = (r"(?:answer|job|idea|advice|suggestion|tip|explanation|response|list|work|point|recipe|"
            r"information|info|option|recommendation|choice|one)s?")
_CLAUSE_END = r"(?=\s*(?:[!.,;]|$))"
_FAILS = r"doesn'?t|does not|didn'?t|did not|won'?t|isn'?t|is not|wasn'?t|not"
_ARTIFACT = r"it|this|that|the code|code|script|program|solution|command|function|method|link|recipe|trick"

_HAN = "\u3400-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[a-z0-9']+|[{_HAN}]")  # a word, or one Han character: each carries about one meaning
_CJK = re.compile(f"[{_HAN}]")
_ASCII = re.compile(r"[a-z]", re.IGNORECASE)
_EXTENSION = _phrases(
    words=(
        r"now", r"also", r"what about", r"how about", r"and what", r"and how", r"can you", r"could you",
        r"would you", r"will you", r"please", r"let'?s", r"tell me", r"show me", r"give me",
        r"how (?:do|does|can|would|should|much|many|long|often)", r"what (?:is|are|if|else)", r"why",
        r"which", r"is there", r"are there", r"any (?:other|more)", r"anything else",
    ),
    cjk=(r"？", r"\?", r"吗", r"呢", r"再", r"还", r"另外", r"能不能", r"能否", r"可以", r"请", r"怎么", r"如何",
         r"继续", r"接下来", r"那"),
)


def _extends(match: re.Match[str], candidate: FeedbackCandidate) -> bool:
    """Level 4's "meaningful extension": a request or question of a few words after the praise."""
    rest = match.string[match.end():]
    return bool(_EXTENSION.search(rest)) and len(_TOKEN.findall(rest)) >= 2


def _reply_in_other_language(match: re.Match[str], candidate: FeedbackCandidate) -> bool:
    """Asking for a language is a correction only when the reply was in another one."""
    wanted = next(group for group in match.groups() if group)
    response = candidate.response.content
    if wanted in ("english", "英文", "英语"):
        return _share(_ASCII, response) < 0.8
    if wanted in ("chinese", "中文", "汉语"):
        return _share(_CJK, response) < 0.2
    return re.search(rf"(?<![\w+#]){re.escape(wanted)}(?![\w+#])", response.lower()) is None


def _share(script: re.Pattern[str], text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(1 for c in letters if script.match(c)) / len(letters) if letters else 0.0


_POSITIVE = _phrases(
    words=(
        # gratitude
        r"thanks(?: so much| a lot| a bunch)?", r"thank (?:you|u)(?: so much| very much)?", r"thx", r"ty",
        r"much appreciated", r"i appreciate (?:it|that|this|your help)",
        # praise: an interjection at the start, not "great britain" or "a perfect cake"
        rf"^\W*(?:(?:oh|ok|okay|wow),? )?(?:{_PRAISE})(?=\s*(?:[!.,;:]|$|and\b|thanks?\b))",
        rf"{_THAT} {_INTENS}(?:{_PRAISE}|helpful|useful|exactly right|spot on){_NOT_ABOUT_WORLD}",
        (rf"(?:{_THAT} |what |such |^\W*)(?:an? |some )?{_INTENS}(?:{_PRAISE}|good|solid|helpful|useful) "
        rf"{_PRAISED}"),
        (rf"(?:that|this|it|those|these|they) (?:sounds?|seems?|looks?) (?:like )?(?:an? |some )?{_INTENS}"
        r"(?:great|good|helpful|useful|perfect|delicious|fun|wonderful|awesome|nice|reasonable)"),
        r"^\W*(?:ok|okay)?,? ?sounds (?:good|great)",
        rf"i {_INTENS}(?:like|love) (?:it|that|this|those|these){_CLAUSE_END}",
        rf"i {_INTENS}(?:like|love) (?:that|this|the|your|those|these) {_PRAISED}",
        r"(?:very|really|so|super|extremely) (?:helpful|useful)",
        rf"(?:that|this) help(?:s|ed)(?: a lot| me| so much)?{_CLAUSE_END}",
        r"you'?re (?:the best|awesome|amazing|a lifesaver|a genius)",
        r"exactly what i (?:needed|wanted|was looking for)",
        # solved
        rf"(?:that|this|it) (?:worked|works)(?: now| perfectly| great| like a charm)?{_CLAUSE_END}",
        r"(?:that|this) did it", rf"(?:problem |issue )?(?:solved|fixed)(?: it)?{_CLAUSE_END}",
        r"that'?s all i (?:need|needed|wanted)",
    ),
    cjk=(
        r"谢谢", r"多谢", r"感谢", r"谢啦", r"谢了", r"太好了", r"太棒了", r"很有帮助", r"非常有用", r"很有用",
        r"帮了大忙", r"正是我(?:想)?要的", r"^\W*(?:很好|不错|真棒|好棒|厉害|完美)(?=\W|$)",
        r"解决了", r"搞定了", r"成功了", r"可以用了", r"能用了", r"没问题了",
    ),
)
# Negations and politeness formulas that look like praise but are not.
_NOT_POSITIVE = _phrases(
    words=(
        r"no,? thanks?(?: you)?", r"thanks to (?!you)",
        r"thanks?(?: you)? (?:anyways?|in advance|for asking|for trying)",
        r"thank(?:s| you)[^.!?]{0,60}\b(?:but|however)",
        r"not (?:so |that |very |really |quite )?(?:great|perfect|helpful|useful|good)",
        r"(?:isn'?t|wasn'?t|not) (?:working|solved|fixed)", r"didn'?t (?:help|work|solve|fix)",
    ),
    cjk=(r"不用谢", r"不谢", r"不太好", r"不够好", r"不完美", r"(?<!有)没(?:有)?解决", r"谢谢，?但"),
)

# Priority order: criticism outranks praise in the same message ("thanks, but it doesn't work" is a
# correction), and level 4 is tried before 5 because it is 5's framing plus an extension.
FAMILIES: tuple[RuleFamily, ...] = (
    RuleFamily(
        "rejection", SatisfactionLevel.REJECTION, 0.85,
        _phrases(
            words=(
                (rf"{_REPLY} {_INTENS}(?:useless|unhelpful|garbage|rubbish|nonsense|bullshit|crap|"
                r"pointless|worthless|not an answer|an? (?:terrible|useless|stupid|bad|awful) "
                r"(?:answer|response|reply))"),
                (rf"{_YOU} {_INTENS}(?:useless|unhelpful|stupid|dumb|terrible|awful|horrible|worthless|"
                r"pathetic|nuts|crazy|annoying|an idiot|a moron|no help|not helping|the worst)"),
                (r"(?:not|never|isn'?t|wasn'?t|aren'?t|weren'?t) (?:being )?"
                r"(?:very |really |at all |that |even |so )?(?:helpful|useful)"),
                r"(?:doesn'?t|does not|didn'?t|did not) (?:really |even )?help",
                r"(?:what|this is|that'?s|you'?re) an? waste of (?:my )?time", r"you suck", r"shut up",
                r"^\W*(?:fuck|screw) (?:you|off|this|that)", r"thanks for nothing", r"i give up",
                r"^\W*(?:oh,? )?(?:just )?(?:forget (?:it|about it)|never ?mind)",
                r"(?:bad|terrible|awful|useless) (?:answer|response|bot|advice)",
            ),
            # 有没有用 asks "is it any use?"; 没用过 says "never used it"
            cjk=(r"(?<!有)没(?:有|什么)?用(?!过|到|上)", r"(?<!有)没(?:有)?帮助", r"^\W*垃圾", r"垃圾(?:回答|答案|回复)",
                 r"(?:你|回答|答案|回复)(?:真|就|真是|就是|是个?)?垃圾", r"废话", r"胡说", r"胡扯", r"瞎说", r"扯淡", r"放屁", r"什么鬼",
                 r"什么玩意", r"你(?:真|好|太)(?:笨|蠢|傻)", r"笨蛋", r"白痴", r"浪费(?:我的)?时间", r"^\W*算了",
                 r"别说了"),
        ),
    ),
    RuleFamily(
        "wrong_language", SatisfactionLevel.ERROR_CORRECTION, 0.8,
        _phrases(
            words=(
                rf"(?:in|into|use|using) {_LANGUAGE}(?: please| instead| only)",
                rf"(?:answer|reply|respond|write|speak|talk|say)(?: it| this| that| to me)? in {_LANGUAGE}",
                rf"i (?:asked|wanted|meant) (?:for )?(?:it )?(?:in )?{_LANGUAGE}",
            ),
            cjk=(rf"用{_LANGUAGE_CJK}(?:回答|回复|写|说|实现)", rf"请用{_LANGUAGE_CJK}", r"说(中文|汉语|英文|英语)"),
        ),
        check=_reply_in_other_language,
    ),
    RuleFamily(
        "correction", SatisfactionLevel.ERROR_CORRECTION, 0.8,
        _phrases(
            words=(
                (rf"(?:{_REPLY}|{_YOU}) {_INTENS}(?:wrong|incorrect|mistaken|inaccurate|false|"
                rf"not (?:right|correct|true|accurate|it)){_NOT_ABOUT_WORLD}"),
                r"^\W*(?:no,? )?it'?s (?:wrong|incorrect)",
                (r"(?:not|isn'?t|wasn'?t) (?:entirely |quite |completely |totally |all |100% )?"
                r"(?:correct|accurate)"),
                r"not what i (?:asked|meant|wanted|said|was (?:asking|looking) for)",
                r"i (?:didn'?t|did not) ask (?:you )?(?:for|to|about)",
                r"i'?m (?:actually )?not (?:referring|talking|asking) (?:to|about)",
                r"^\W*i meant", r"^\W*(?:no|nope|actually)\W+i (?:asked|said|meant|wanted (?!to\b))",
                r"i (?:already )?(?:asked you|told you)", r"i already (?:said|mentioned)",
                r"you (?:forgot|missed|left out|ignored|misunderstood|misunderstand|misread|skipped)",
                r"you (?:got|have|had) (?:[\w']+ ){0,4}wrong", r"you made (?:that|it|this|those) up",
                rf"{_YOU} missing",
                (r"you (?:didn'?t|did not|haven'?t|have not) (?:answer|address|include|mention|consider|read|"
                r"understand|list|explain)"),
                r"(?:there'?s|there is|you have|you made|that'?s) an? (?:[\w']+ )?(?:typo|mistake|error|bug)",
                rf"{_THAT} {_INTENS}too (?:long|short|vague|generic|complicated|verbose)",
                (r"(?:it|this|that)(?: still)? (?:didn'?t|did not|doesn'?t|does not|hasn'?t|has not) "
                r"(?:solve|fix)"),
            ),
            cjk=(r"不对(?!称|劲)", r"错了", r"有错", r"(?:写|搞|弄|算|说|读|看|理解|翻译)错", r"不正确", r"不准确",
                 r"不是我(?:要|想要|问|说)的", r"我(?:问|说|要)的是", r"我的意思是", r"你(?:漏|忘记?|遗漏)了",
                 r"你没(?:有)?(?:回答|考虑|提到|写|理解)", r"答非所问", r"(?<!有)没(?:有)?解决"),
        ),
    ),
    RuleFamily(
        "broken", SatisfactionLevel.ERROR_CORRECTION, 0.8,
        _phrases(
            words=(
                # "if that doesn't work, ..." plans ahead; it reports nothing
                (rf"(?<!if )(?:{_ARTIFACT})(?:'?s| is| was)? (?:still )?(?:{_FAILS}) (?:even )?"
                r"(?:work|working|compile|run|running)"),
                r"^\W*(?:still )?(?:doesn'?t|does not|didn'?t|not) (?:work|working)",
                r"(?:that|this|the code|your code|the script)(?:'?s| is| was)? (?:still )?broken",
                (r"(?:get|gets|got|getting|throws?|threw|raises?|gives?|gave|giving|shows?|returns?) (?:me )?"
                r"(?:an?|the|this|that|some|same) (?:error|exception|traceback)"),
                (r"(?:type|name|value|key|index|attribute|syntax|import|runtime|zerodivision|indentation|"
                r"modulenotfound|filenotfound|assertion|recursion|reference|range)error"),
                r"\w+exception", r"traceback", r"syntax error", r"error:",
            ),
            cjk=(r"报错", r"出错", r"错误", r"运行不了", r"跑不(?:通|起来)", r"不能运行", r"用不了", r"不管用",
                 r"还是不行", r"(?<!有)没(?:有)?效果"),
        ),
    ),
    RuleFamily(
        "doubt", SatisfactionLevel.ERROR_CORRECTION, 0.6,
        _phrases(
            words=(
                r"are you sure", r"makes no sense", r"that can'?t be right",
                (r"(?:^\W*|that |this )(?:doesn'?t?|does not|didn'?t|did not) (?:even )?make "
                r"(?:any |much )?sense"),
                rf"{_YOU} not making (?:any )?sense", r"what are you talking about",
                rf"(?:{_REPLY}|{_YOU}) {_INTENS}confusing",
            ),
            cjk=(r"你确定", r"说不通"),
        ),
    ),
    RuleFamily("positive_engagement", SatisfactionLevel.POSITIVE_ENGAGEMENT, 0.7, _POSITIVE,
               unless=_NOT_POSITIVE, check=_extends),
    RuleFamily("satisfaction", SatisfactionLevel.SATISFACTION, 0.8, _POSITIVE, unless=_NOT_POSITIVE),
)


def _normalize(text: str) -> str:
    """Lower case, straight apostrophes, single spaces: the patterns are written for that form only."""
    return " ".join(text[:HEAD_CHARS].replace("\u2019", "'").replace("`", "'").lower().split())


class RulesLabeler:
    """Labels with the first family of ``FAMILIES`` that fires; neutral when none does."""

    labeler_id = "rules"
    version = "1"  # bump with any change to the table: stored labels record which rules made them

    def label(self, candidates: Sequence[FeedbackCandidate]) -> list[Label]:
        return [self._label_one(candidate) for candidate in candidates]

    def _label_one(self, candidate: FeedbackCandidate) -> Label:
        text = _normalize(candidate.followup.content)
        for family in FAMILIES:
            match = family.fires(text, candidate)
            if match:
                reason = f"{family.name}: {match.group(0).strip()!r}"
                return self._make(family.level, family.confidence, reason)
        return self._make(SatisfactionLevel.NEUTRAL, NEUTRAL_CONFIDENCE, "neutral: no explicit feedback")

    def _make(self, level: SatisfactionLevel, confidence: float, reason: str) -> Label:
        return Label(level=level, confidence=confidence, reason=reason,
                     labeler_id=self.labeler_id, labeler_version=self.version)
