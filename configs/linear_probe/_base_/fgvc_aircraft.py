# FGVC-Aircraft (variants): 100 classes, 3,334 train / 3,333 val / 3,333 test.
#   data/fgvc-aircraft-2013b/data/{images/,images_variant_{train,val,test}.txt,variants.txt}
fgvc_aircraft = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.FGVCAircraft',
            data_root='data/fgvc-aircraft-2013b',
            split='train')),
    val=dict(
        dataset=dict(
            type='mmpretrain.FGVCAircraft',
            data_root='data/fgvc-aircraft-2013b',
            split='val')),
    test=dict(
        dataset=dict(
            type='mmpretrain.FGVCAircraft',
            data_root='data/fgvc-aircraft-2013b',
            split='test')))
