"""Real follow-ups (HH-RLHF helpful-base) and a stock reply between them: what the mining tests mine."""

REPLY = ("Here is what I found about that: there are several good options, and I listed the most common ones "
         "with a short explanation of each so that you can compare them.")
KETO_ASK = ("Can you give me an example of what a day of a keto diet what look like? Tell me what I could eat for "
            "breakfast, lunch, and dinner.")
KETO_THANKS = "Thanks, I can't wait to try these meals. I'll let you know if I need more keto meals."
NATIVITY_ASK = "Is that what a nativity play is based on?"
NATIVITY_GREAT = "Great. Is there anything else I should know about nativity scenes or plays?"  # cosine 0.71
FRIDGE_ASK = "How long should I keep it in the refrigerator after that?"
FRIDGE_THANKS = "Okay there are quite a few steps involved.  Thanks for the help!"  # cosine -0.01, unrelated
WATER = "How much water should I drink every day when I am on a diet?"
PODCASTS = "Do you know any good podcasts about the history of ancient Rome?"
