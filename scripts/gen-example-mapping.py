import re
src=open('src/mapping/defaults.rs').read()
def table(name):
    i=src.index('pub const %s'%name); j=src.index('];',i)
    body=src[i:j]
    out=[]
    for m in re.finditer(r'\(\s*"([a-z_]+)",\s*"((?:[^"\\]|\\.)*)",?\s*\)', body):
        out.append((m.group(1), m.group(2).encode().decode('unicode_escape')))
    return out
parts=[]
for sec,const,doc in [('loan','DEFAULT_LOAN','Upload Loan top-level keys. Input: {lead, program, line_detail, allocation_month, today, today_epoch, min_dpd}.'),
                  ('default','DEFAULT_DEFAULT','The one defaults[] entry (allocation month) of each upload. Same input as [mapping.loan].'),
                  ('payment','DEFAULT_PAYMENT','Update Payment keys (flow C, LMS repayment -> Credgenics).'),
                  ('record','DEFAULT_RECORD','Crego record keys (flow B, Credgenics recovery -> LMS record).')]:
    parts.append('\n# %s\n[mapping.%s]\n'%(doc,sec))
    for k,v in table(const):
        parts.append("# %s = '%s'\n"%(k,v))
print(''.join(parts))
