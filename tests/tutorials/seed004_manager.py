from multiprocessing import Pool, Manager
import sys

def update_string(val, l):
    l.append(val)

if __name__ == "__main__":
    strs = ['with', 'great', 'power', 'comes', 'great', 'responsibilty']
    # Create the Manager Object
    mgr = Manager()
    # Create a manager list
    li = mgr.list()
    with Pool(4) as p:
        p.starmap(update_string, list(map(lambda x: (x,li), strs)))
    print(f"List: {li}")
