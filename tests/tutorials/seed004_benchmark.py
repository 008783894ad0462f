from multiprocessing import Pool
import time

def calc_cubes(_):
    """Calculate the cube of numbers ranging till 1000"""
    return list(map(lambda n: n*n*n, range(1000)))

if __name__ == "__main__":
    t1 = time.time()
    with Pool(5) as p:
        p.map(calc_cubes, range(100000))  # Call the calc_cubes method 100000 times with 5 concurrent tasks.
    print("Parallel Processing Time Taken: {0}".format(time.time() - t1))
    print("Starting Serial Processing")
    t2 = time.time()
    list(map(calc_cubes, range(100000)))  # Call the calc_cubes method 100000 times sequentially.
    print("Sequential Processing Time Taken: {0}".format(time.time() - t2))
